// Samples a pgrelay process's VmRSS every 10 ms on a thread of its own until stopped, keeping the
// peak: for tests that check memory stays flat while something large or hostile goes through.
#pragma once

#include <algorithm>
#include <atomic>
#include <thread>

#include "harness.h"

namespace pgrelay::it {

class RssSampler {
 public:
  explicit RssSampler(const PgrelayProcess& p) : process_(p), thread_([this] { loop(); }) {}
  ~RssSampler() { stop(); }
  RssSampler(const RssSampler&) = delete;
  RssSampler& operator=(const RssSampler&) = delete;
  long stop() {   // the peak in KiB
    done_ = true;
    if (thread_.joinable()) thread_.join();
    return peak_;
  }

 private:
  void loop() {
    while (!done_) {
      peak_ = std::max(peak_.load(), process_.rss_kib());
      std::this_thread::sleep_for(10ms);
    }
  }
  const PgrelayProcess& process_;
  std::atomic<bool> done_{false};
  std::atomic<long> peak_{0};
  std::thread thread_;
};

}  // namespace pgrelay::it
