// What the admin console and the metrics exporter read from a pool, and RECONNECT.
#include "proxy/pool/pool.h"

#include <algorithm>
#include <cmath>

#include "proxy/base/log.h"

namespace pgrelay::proxy {

// target: the number of connections at which the busy ones would sit just under
// scale_up_threshold (the same fit scale_down() shrinks to), but at least enough for every
// client that is waiting; never below min_pool_size, never above pool_size (max_pool_size plus
// reserve_pool_size while clients wait on a full pool).
Pool::Gauges Pool::gauges() const {
  const auto now = ServerConnection::Clock::now();
  std::lock_guard lock(mu_);
  Gauges g;
  g.open = open_;
  g.idle = int(idle_.size());
  g.login = logging_in_;
  g.waiting = int(waiters_.size());
  g.pinned = pinned_;
  g.active = std::max(0, open_ - g.idle - logging_in_) + pinned_;
  g.retired = retired_;
  for (const auto& c : idle_)
    if (now - c->idle_since > settings_.server_check_delay) ++g.used;
  if (!waiters_.empty()) g.max_wait = std::max(ServerConnection::Clock::duration{}, now - oldest_waiter_locked());
  const int busy = g.active - g.pinned;   // pinned connections do not count against pool_size
  const int fit = busy == 0 ? 0 : int(std::floor(busy / settings_.scale_up_threshold)) + 1;
  const int ceiling = g.waiting > 0 && open_ >= settings_.pool_size
                          ? settings_.max_pool_size + settings_.reserve_pool_size
                          : settings_.pool_size;
  g.target = std::clamp(std::max(fit, busy + g.waiting), settings_.min_pool_size,
                        std::max(settings_.min_pool_size, ceiling));
  return g;
}

void Pool::visit_idle(const std::function<void(const ServerConnection&, bool close_needed)>& f) const {
  std::lock_guard lock(mu_);
  for (const auto& c : idle_) f(*c, retired_ || past_lifetime(*c));
}

void Pool::reconnect(std::string_view why) {
  {
    std::lock_guard lock(mu_);
    reconnect_before_ = ServerConnection::Clock::now();
  }
  // Idle ones are past the cutoff now: close_idle_before() drops them (lifetime rule).
  close_idle_before(ServerConnection::Clock::time_point::min());
  log_info("pool ", name_, ": ", why, ": server connections close now, or as they come back to the pool");
}

bool Pool::close_needed(const ServerConnection& c) const {
  std::lock_guard lock(mu_);
  return retired_ || past_lifetime(c);
}

}  // namespace pgrelay::proxy
