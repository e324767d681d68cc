// A pool's size: slots under ConnectionLimits, scaling up ahead of demand and down when quiet,
// eviction for another pool, and pinned connections (see pool.h for the policy).
#include <algorithm>
#include <cmath>
#include <sstream>

#include "proxy/base/log.h"
#include "proxy/pool/pool.h"

namespace pgrelay::proxy {

void Pool::serve_waiters() {
  std::lock_guard lock(mu_);
  while (give_slot_to_waiter_locked()) {
  }
}

void Pool::pin_out(const std::string& reason) {
  std::lock_guard lock(mu_);
  --open_;
  ++pinned_;
  ++pins_;
  ++pins_by_reason_[reason];
  (void)give_slot_to_waiter_locked();
}

void Pool::count_refusal() {
  std::lock_guard lock(mu_);
  ++refusals_;
}

void Pool::pin_in() {
  std::lock_guard lock(mu_);
  --pinned_;
  ++open_;
}

bool Pool::take_slot_locked(int ceiling) {
  if (open_ >= ceiling) {
    refused_ = ConnectionLimits::Refusal::kNone;   // full by its own size, not by the limits
    return false;
  }
  if (limits_) {
    refused_ = limits_->try_take(key_, settings_.caps);
    if (refused_ != ConnectionLimits::Refusal::kNone) {
      limits_->starve(shared_from_this(), key_);
      return false;
    }
  }
  ++open_;
  return true;
}

void Pool::drop_slot_locked(bool was_open) {
  --open_;
  if (was_open) counters_->servers_closed.fetch_add(1, std::memory_order_relaxed);
  if (limits_) limits_->give_back(key_);
}

void Pool::slots_freed() {
  if (!limits_) return;
  for (auto& pool : limits_->take_starved()) pool->serve_waiters();
}

std::string Pool::wait_timeout_message(conf::Duration wait_timeout) const {
  std::string why;
  switch (refused_) {
    case ConnectionLimits::Refusal::kDatabase:
      why = "max_db_connections (" + std::to_string(settings_.caps.per_database) + ") reached for database \"" +
            key_.database + "\"";
      break;
    case ConnectionLimits::Refusal::kUser:
      why = "max_user_connections (" + std::to_string(settings_.caps.per_user) + ") reached for user \"" +
            key_.user + "\"";
      break;
    case ConnectionLimits::Refusal::kNone:
      why = "pool_size " + std::to_string(settings_.pool_size) + ", all in use";
      break;
  }
  return "query_wait_timeout: no server connection became free in pool \"" + name_ + "\" within " +
         std::to_string(wait_timeout.count()) + "ms (" + why + ")";
}

void Pool::scale_up_after_handout(asio::any_io_executor ex) {
  {
    std::lock_guard lock(mu_);
    const int active = open_ - int(idle_.size());
    peak_active_ = std::max(peak_active_, active);
    if (prewarming_ || retired_ || !waiters_.empty() || open_ <= 0 ||
        double(active) < settings_.scale_up_threshold * open_ || !take_slot_locked(settings_.pool_size))
      return;
    prewarming_ = true;
    ++scale_ups_;
    std::ostringstream why;
    why << "utilization " << active << "/" << open_ - 1 << " at or above scale_up_threshold "
        << settings_.scale_up_threshold;
    last_scale_ = {ServerConnection::Clock::now(), open_ - 1, open_, why.str()};
  }
  auto self = shared_from_this();
  asio::co_spawn(ex, [self, ex]() -> awaitable<void> {
    auto opened = co_await self->open_in_slot(ex);
    {
      std::lock_guard lock(self->mu_);
      self->prewarming_ = false;
    }
    if (opened.ok()) self->release(std::move(*opened));
  }, [name = name_](std::exception_ptr e) { log_exception(e, "pool " + name + ": opening a spare connection"); });
}

void Pool::close_oldest_idle_locked(int target, std::vector<std::unique_ptr<ServerConnection>>& out) {
  while (!idle_.empty() && open_ > target) {
    out.push_back(std::move(idle_.front()));
    idle_.erase(idle_.begin());
    drop_slot_locked();
  }
}

void Pool::scale_down(ServerConnection::Clock::time_point now) {
  std::vector<std::unique_ptr<ServerConnection>> closing;
  {
    std::lock_guard lock(mu_);
    const int active = open_ - int(idle_.size());
    const int peak = std::max(peak_active_, active);
    peak_active_ = active;   // the next period starts from what is busy now
    if (retired_ || open_ <= settings_.min_pool_size || peak >= settings_.scale_down_threshold * open_) {
      quiet_since_.reset();
      return;
    }
    if (!quiet_since_) {
      quiet_since_ = now;
      quiet_peak_ = peak;
      return;
    }
    quiet_peak_ = std::max(quiet_peak_, peak);
    if (now - *quiet_since_ < settings_.scale_down_delay) return;
    // Small enough that the quiet peak would not yet trigger a scale-up, never below min.
    const int fit = quiet_peak_ == 0 ? 0 : int(std::floor(quiet_peak_ / settings_.scale_up_threshold)) + 1;
    const int target = std::max(settings_.min_pool_size, fit);
    const int from = open_;
    close_oldest_idle_locked(target, closing);
    quiet_since_ = now;   // the next step, if any, after another scale_down_delay
    if (closing.empty()) return;
    ++scale_downs_;
    std::ostringstream why;
    why << "peak utilization " << quiet_peak_ << "/" << from << " below scale_down_threshold "
        << settings_.scale_down_threshold << " for " << settings_.scale_down_delay.count() << " ms";
    last_scale_ = {now, from, open_, why.str()};
    log_info("pool ", name_, ": scaling down from ", from, " to ", open_, " server connections: ", why.str());
  }
  for (auto& c : closing) c->close();
  slots_freed();
}

bool Pool::evict_one_idle() {
  std::vector<std::unique_ptr<ServerConnection>> closing;
  {
    std::lock_guard lock(mu_);
    close_oldest_idle_locked(open_ - 1, closing);
  }
  if (closing.empty()) return false;
  log_info("pool ", name_, ": closing an idle server connection to make room for another pool under max_db_connections/max_user_connections");
  closing.front()->close();
  slots_freed();
  return true;
}

}  // namespace pgrelay::proxy
