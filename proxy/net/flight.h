// One task in progress that others wait for instead of doing it again: each waiter's Event is
// notified on its own executor (another worker, often) when the task lands. The query cache's
// single flight and the pools' greeting fetch use it.
#pragma once

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "proxy/net/asio.h"

namespace pgrelay::proxy {

class Flight {
 public:
  // Wakes `event` (on `ex`) when the flight lands; false when it has landed already.
  bool wait(const asio::any_io_executor& ex, std::shared_ptr<Event> event) {
    std::lock_guard lock(mu_);
    if (landed_) return false;
    waiters_.emplace_back(ex, std::move(event));
    return true;
  }

  void land() {
    std::vector<std::pair<asio::any_io_executor, std::shared_ptr<Event>>> waiters;
    {
      std::lock_guard lock(mu_);
      landed_ = true;
      waiters.swap(waiters_);
    }
    for (auto& [ex, event] : waiters) asio::post(ex, [event] { event->notify(); });
  }

 private:
  std::mutex mu_;
  bool landed_ = false;
  std::vector<std::pair<asio::any_io_executor, std::shared_ptr<Event>>> waiters_;
};

}  // namespace pgrelay::proxy
