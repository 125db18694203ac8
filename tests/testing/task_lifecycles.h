#pragma once
// Drives tasks through a real TaskService for the benchmarks: `n` tasks of
// type "bench" created, then each claimed and completed. Appends are
// asynchronous, so the log groups them as it can; returns once all are durable.

#include <latch>
#include <string>

#include "services/task_service.h"

namespace runlog::testing {

inline void CreateClaimComplete(services::TaskService& service, const services::Caller& caller,
                                int n) {
  std::latch created(n);
  for (int i = 0; i < n; ++i) {
    services::CreateTask c{caller, "", "bench", "", "{\"i\":" + std::to_string(i) + "}", "{}", ""};
    service.Create(std::move(c), [&](auto) { created.count_down(); });
  }
  created.wait();
  std::latch done(n);
  for (int i = 0; i < n; ++i) {
    service.Claim({caller, "w", {"bench"}, 300'000}, std::chrono::milliseconds(0),
                  [&](Result<services::CommandResult> r) {
                    services::CompleteTask complete{
                        caller, {r->task.id, r->task.lease.lease_id, ""}, "{\"ok\":true}"};
                    service.Submit(std::move(complete), [&](auto) { done.count_down(); });
                  });
  }
  done.wait();
}

}  // namespace runlog::testing
