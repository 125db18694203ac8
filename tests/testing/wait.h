#pragma once
// Waiting in tests without sleeping for synchronisation: poll a condition the
// test can observe until it holds or a deadline passes, and assert the result,
// so that a wait that never ends fails the test clearly instead of hanging it:
//
//   ASSERT_TRUE(WaitFor([&] { return service.parked_claims() > 0; }))
//       << "the claim never parked";

#include <chrono>
#include <thread>

namespace runlog::testing {

// Polls `condition` until it holds or `timeout` passes; true if it held. The
// condition is checked once more after the deadline, so one that came true
// during the last pause still counts.
template <typename F>
bool WaitFor(F condition, std::chrono::milliseconds timeout = std::chrono::seconds(10),
             std::chrono::milliseconds interval = std::chrono::milliseconds(1)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

}  // namespace runlog::testing
