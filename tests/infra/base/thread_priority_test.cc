// NiceThreadsNamed lowers the priority of the threads it names, and only those.

#include "infra/base/thread_priority.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <thread>

namespace runlog::infra {
namespace {

// A thread with a name that waits until released; reports its thread id.
class NamedThread {
 public:
  explicit NamedThread(const char* name) {
    std::promise<pid_t> tid;
    auto started = tid.get_future();
    thread_ = std::thread([this, name, tid = std::move(tid)]() mutable {
      pthread_setname_np(pthread_self(), name);
      tid.set_value(static_cast<pid_t>(::syscall(SYS_gettid)));
      release_.get_future().wait();
    });
    tid_ = started.get();
  }
  ~NamedThread() {
    release_.set_value();
    thread_.join();
  }
  int nice() const { return ::getpriority(PRIO_PROCESS, static_cast<id_t>(tid_)); }

 private:
  std::promise<void> release_;
  std::thread thread_;
  pid_t tid_ = 0;
};

TEST(ThreadPriority, NicesOnlyTheThreadsNamed) {
  // Threads start at their creator's nice value, which the test runner may
  // have raised already: aim above it.
  const int base = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
  const int lower = std::min(base + 3, 19);
  NamedThread background("bg-worker-1");
  NamedThread also("bg-worker-2");
  NamedThread request("req-worker");
  ASSERT_EQ(background.nice(), base);
  EXPECT_EQ(NiceThreadsNamed({"bg-worker"}, lower), 2);
  EXPECT_EQ(background.nice(), lower);
  EXPECT_EQ(also.nice(), lower);
  EXPECT_EQ(request.nice(), base);
  EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid))), base);
  EXPECT_EQ(NiceThreadsNamed({"no-such-thread"}, lower), 0);
}

}  // namespace
}  // namespace runlog::infra
