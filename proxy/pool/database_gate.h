// PAUSE, SUSPEND and DISABLE: which databases may hand out server connections and take new clients.
//
// The admin console closes and opens the gate; Pool::acquire() waits at it, so a paused
// database's clients queue for a server connection (in every pool mode) until RESUME, and
// ClientSession::login() refuses new clients of a disabled database. Thread-safe: a short
// mutex; a waiting client is woken on its own executor (asio::post).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "proxy/net/asio.h"

namespace pgrelay::proxy {

class DatabaseGate {
 public:
  using Clock = std::chrono::steady_clock;

  // `database` as clients name it; "" means every database (PAUSE / RESUME without one).
  void pause(const std::string& database);
  // Clears the pause of `database` (its own, not a global one), or with "" every pause and
  // SUSPEND. False when there was nothing to resume.
  bool resume(const std::string& database);
  void suspend();
  void disable(const std::string& database);
  bool enable(const std::string& database);   // false when it was not disabled

  bool paused(const std::string& database) const;     // its own pause, a global one or SUSPEND
  bool disabled(const std::string& database) const;
  bool suspended() const;
  bool globally_paused() const;
  std::vector<std::string> paused_databases() const;   // paused by name

  // Waits on `ex` while `database` is paused, until `deadline`. True when open. `user` (the
  // pool's) only labels the waiter for waiting().
  awaitable<bool> wait_open(const std::string& database, const std::string& user, asio::any_io_executor ex,
                            Clock::time_point deadline);

  // Clients of the (database, user) pool waiting at the gate now, and since when the longest has.
  struct Waiting {
    int clients = 0;
    Clock::time_point oldest = Clock::time_point::max();
  };
  Waiting waiting(const std::string& database, const std::string& user) const;

 private:
  struct Waiter {
    std::string database, user;
    asio::any_io_executor ex;
    std::shared_ptr<Event> event;   // touched only on `ex`
    Clock::time_point since;
  };
  bool paused_locked(const std::string& database) const;
  void note_pauses_locked();   // after pause state changed: any_paused_ follows
  void wake_open_locked();

  mutable std::mutex mu_;
  std::atomic<bool> any_paused_{false};   // anything paused or suspended: paused() needs the lock
  bool all_paused_ = false;
  bool suspended_ = false;
  std::set<std::string> paused_;
  std::set<std::string> disabled_;
  std::vector<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace pgrelay::proxy
