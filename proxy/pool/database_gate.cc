// PAUSE, SUSPEND and DISABLE state, and clients waiting for RESUME.
#include "proxy/pool/database_gate.h"

#include <algorithm>

namespace pgrelay::proxy {

void DatabaseGate::pause(const std::string& database) {
  std::lock_guard lock(mu_);
  if (database.empty()) all_paused_ = true;
  else paused_.insert(database);
  note_pauses_locked();
}

bool DatabaseGate::resume(const std::string& database) {
  std::lock_guard lock(mu_);
  bool changed = false;
  if (database.empty()) {
    changed = all_paused_ || suspended_ || !paused_.empty();
    all_paused_ = suspended_ = false;
    paused_.clear();
  } else {
    changed = paused_.erase(database) > 0;
  }
  note_pauses_locked();
  wake_open_locked();
  return changed;
}

void DatabaseGate::suspend() {
  std::lock_guard lock(mu_);
  suspended_ = true;
  note_pauses_locked();
}

void DatabaseGate::disable(const std::string& database) {
  std::lock_guard lock(mu_);
  disabled_.insert(database);
}

bool DatabaseGate::enable(const std::string& database) {
  std::lock_guard lock(mu_);
  return disabled_.erase(database) > 0;
}

bool DatabaseGate::paused_locked(const std::string& database) const {
  return all_paused_ || suspended_ || paused_.count(database) > 0;
}

void DatabaseGate::note_pauses_locked() {
  any_paused_.store(all_paused_ || suspended_ || !paused_.empty(), std::memory_order_release);
}

bool DatabaseGate::paused(const std::string& database) const {
  // Every acquire asks, from every worker: nothing paused (nearly always) costs no lock.
  if (!any_paused_.load(std::memory_order_acquire)) return false;
  std::lock_guard lock(mu_);
  return paused_locked(database);
}

bool DatabaseGate::disabled(const std::string& database) const {
  std::lock_guard lock(mu_);
  return disabled_.count(database) > 0;
}

bool DatabaseGate::suspended() const {
  std::lock_guard lock(mu_);
  return suspended_;
}

bool DatabaseGate::globally_paused() const {
  std::lock_guard lock(mu_);
  return all_paused_;
}

std::vector<std::string> DatabaseGate::paused_databases() const {
  std::lock_guard lock(mu_);
  return {paused_.begin(), paused_.end()};
}

void DatabaseGate::wake_open_locked() {
  for (const auto& w : waiters_) {
    if (paused_locked(w->database)) continue;
    asio::post(w->ex, [event = w->event] { event->notify(); });
  }
}

awaitable<bool> DatabaseGate::wait_open(const std::string& database, const std::string& user,
                                        asio::any_io_executor ex, Clock::time_point deadline) {
  auto waiter = std::make_shared<Waiter>(Waiter{database, user, ex, std::make_shared<Event>(ex), Clock::now()});
  {
    std::lock_guard lock(mu_);
    if (!paused_locked(database)) co_return true;
    waiters_.push_back(waiter);
  }
  bool open = false;
  for (;;) {
    co_await waiter->event->wait_until(deadline);
    std::lock_guard lock(mu_);
    open = !paused_locked(database);
    if (open || Clock::now() >= deadline) {
      waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), waiter), waiters_.end());
      break;
    }
    // Woken, but paused again before this client ran: wait for the next RESUME.
    waiter->event = std::make_shared<Event>(ex);
  }
  co_return open;
}

DatabaseGate::Waiting DatabaseGate::waiting(const std::string& database, const std::string& user) const {
  std::lock_guard lock(mu_);
  Waiting w;
  for (const auto& waiter : waiters_) {
    if (waiter->database != database || waiter->user != user) continue;
    ++w.clients;
    w.oldest = std::min(w.oldest, waiter->since);
  }
  return w;
}

}  // namespace pgrelay::proxy
