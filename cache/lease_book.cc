// Leases on the invalidation channel: who may serve unconfirmed, and whose acknowledgement a bump waits for.
#include "cache/lease_book.h"

#include <algorithm>

#include "cache/lease_messages.h"

namespace pgrelay::cache {
namespace {

constexpr size_t kMaxPingsInFlight = 64;

}  // namespace

LeaseBook::LeaseBook(Duration length) : length_(length) {}

void LeaseBook::subscribed(Time confirmed) {
  std::lock_guard lock(mu_);
  subscribed_ = true;
  first_ping_ = next_ping_;
  pings_.clear();
  last_own_heard_ = Time{};
  // Before any lease of this subscription is stored (release), so a reader that sees the
  // lease sees this too.
  subscribed_at_.store(ticks(confirmed), std::memory_order_release);
}

void LeaseBook::unsubscribed() {
  std::lock_guard lock(mu_);
  subscribed_ = false;
  pings_.clear();
  lease_until_.store(0, std::memory_order_release);
}

bool LeaseBook::is_subscribed() const {
  std::lock_guard lock(mu_);
  return subscribed_;
}

uint64_t LeaseBook::ping_sending(Time now) {
  std::lock_guard lock(mu_);
  if (!subscribed_) return 0;
  const uint64_t id = next_ping_++;
  pings_.emplace(id, now);
  while (pings_.size() > kMaxPingsInFlight) pings_.erase(pings_.begin());
  return id;
}

bool LeaseBook::heard_own_ping(uint64_t id, Time now) {
  std::lock_guard lock(mu_);
  if (!subscribed_ || id < first_ping_) return false;
  auto it = pings_.find(id);
  if (it == pings_.end()) return false;
  const Time until = it->second + serve_length();
  pings_.erase(pings_.begin(), std::next(it));
  last_own_heard_ = now;
  // Everything published before the ping has been applied (the caller applies messages as
  // they come, in order): readers that see this lease see those bumps.
  if (ticks(until) > lease_until_.load(std::memory_order_relaxed)) lease_until_.store(ticks(until), std::memory_order_release);
  renewals_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

LeaseBook::Time LeaseBook::last_own_ping_heard() const {
  std::lock_guard lock(mu_);
  return last_own_heard_;
}

void LeaseBook::heard_ping(std::string_view instance, Time now) {
  std::lock_guard lock(mu_);
  auto it = peers_.find(instance);
  if (it == peers_.end()) {
    // A new peer: forget the ones silent for long (instances that stopped for good).
    std::erase_if(peers_, [&](const auto& p) { return p.second.heard + 10 * p.second.reach < now; });
    const Duration reach = std::max(length_, Duration(instance_lease_length(instance)));
    peers_.emplace(std::string(instance), Peer{.heard = now, .reach = reach});
  } else {
    it->second.heard = now;
  }
}

void LeaseBook::heard_own_bump(uint64_t seq, Time now) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(seq);
  // Heard before the subscription was confirmed here: its live set may be short. Waits it out.
  if (!subscribed_ || it == pending_.end() || it->second.echoed) return;
  Pending& p = it->second;
  p.echoed = true;
  p.subscribed_at = at(subscribed_at_.load(std::memory_order_relaxed));
  for (const auto& [instance, peer] : peers_) {
    if (peer.heard + peer.reach > now) p.needed.push_back(instance);
  }
}

void LeaseBook::heard_ack(std::string_view from, uint64_t seq) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(seq);
  if (it != pending_.end()) it->second.acked.emplace(from);
}

void LeaseBook::hold_window(DatabaseId database, std::string_view instance, uint64_t opened, Time now, Duration hold) {
  const Time until = now + hold;
  std::lock_guard lock(mu_);
  for (auto it = holds_.begin(); it != holds_.end();) {
    std::erase_if(it->second, [&](const auto& h) { return h.second.until <= now; });
    it = it->second.empty() ? holds_.erase(it) : std::next(it);
  }
  Holds& holds = holds_[database];
  auto it = holds.find(instance);
  if (it == holds.end()) it = holds.emplace(std::string(instance), Hold{}).first;
  it->second.until = std::max(it->second.until, until);
  it->second.opened = std::max(it->second.opened, opened);
  if (ticks(until) > holds_until_.load(std::memory_order_relaxed)) holds_until_.store(ticks(until), std::memory_order_release);
}

bool LeaseBook::window_ended(DatabaseId database, std::string_view instance, uint64_t end, Time now) {
  std::lock_guard lock(mu_);
  auto held = holds_.find(database);
  if (held == holds_.end()) return false;
  auto it = held->second.find(instance);
  if (it == held->second.end() || it->second.until <= now || it->second.opened >= end) return false;
  held->second.erase(it);
  if (held->second.empty()) holds_.erase(held);
  update_holds_until();
  return true;
}

void LeaseBook::update_holds_until() {
  // Lowered only under mu_, as it is raised: a reader that saw the old value locks and looks.
  int64_t latest = 0;
  for (const auto& [database, holds] : holds_) {
    for (const auto& [instance, hold] : holds) latest = std::max(latest, ticks(hold.until));
  }
  holds_until_.store(latest, std::memory_order_release);
}

size_t LeaseBook::windows_held(Time now) const {
  std::lock_guard lock(mu_);
  return size_t(std::count_if(holds_.begin(), holds_.end(), [&](const auto& d) {
    return std::any_of(d.second.begin(), d.second.end(), [&](const auto& h) { return now < h.second.until; });
  }));
}

uint64_t LeaseBook::window_opening(DatabaseId database) {
  {
    std::lock_guard lock(mu_);
    ++own_windows_[database];
  }
  // Numbered after it is counted: a window_closing() that saw the count at zero read next_seq_
  // before this takes a number, so this one's number is not below that end.
  return bump_starting();
}

uint64_t LeaseBook::window_closing(DatabaseId database) {
  std::lock_guard lock(mu_);
  auto it = own_windows_.find(database);
  if (it == own_windows_.end()) return 0;
  if (--it->second > 0) return 0;
  own_windows_.erase(it);
  return next_seq_.load(std::memory_order_relaxed);
}

void LeaseBook::hold_all(Time now, Duration hold) {
  const int64_t until = ticks(now + hold);
  if (until > all_held_until_.load(std::memory_order_relaxed)) all_held_until_.store(until, std::memory_order_release);
}

bool LeaseBook::done(const Pending& p, Time now) const {
  // The live set is complete only when the subscription that heard the bump back had been up
  // one lease length: pings sent before it was confirmed were not heard.
  if (!p.echoed || now < p.subscribed_at + longest_reach()) return false;
  for (const std::string& instance : p.needed) {
    if (p.acked.contains(instance)) continue;
    auto it = peers_.find(instance);
    if (it != peers_.end() && it->second.heard + it->second.reach > now) return false;   // still live, not acked
  }
  return true;
}

std::vector<uint64_t> LeaseBook::take_acknowledged(Time now) {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> out;
  for (auto& [seq, p] : pending_) {
    if (!p.reported && done(p, now)) {
      p.reported = true;
      out.push_back(seq);
    }
  }
  return out;
}

uint64_t LeaseBook::bump_starting() {
  const uint64_t seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  pending_.emplace(seq, Pending{});
  return seq;
}

bool LeaseBook::acknowledged(uint64_t seq, Time now) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(seq);
  return it != pending_.end() && done(it->second, now);
}

LeaseBook::Duration LeaseBook::longest_reach() const {
  Duration out = length_;
  for (const auto& [instance, peer] : peers_) out = std::max(out, peer.reach);
  return out;
}

LeaseBook::Duration LeaseBook::wait_length() const {
  std::lock_guard lock(mu_);
  return longest_reach();
}

void LeaseBook::bump_done(uint64_t seq) {
  std::lock_guard lock(mu_);
  pending_.erase(seq);
}

LeaseBook::Lease LeaseBook::lease() const {
  Lease out;
  out.until = at(lease_until_.load(std::memory_order_acquire));
  out.subscribed_at = at(subscribed_at_.load(std::memory_order_acquire));
  return out;
}

bool LeaseBook::window_held(DatabaseId database, Time now) const {
  if (now >= at(holds_until_.load(std::memory_order_acquire))) return false;
  std::lock_guard lock(mu_);
  auto it = holds_.find(database);
  if (it == holds_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const auto& h) { return now < h.second.until; });
}

bool LeaseBook::serves(const Lease& lease, DatabaseId database, Time filled_at, Time now) const {
  return now < lease.until && filled_at >= lease.subscribed_at && now >= at(all_held_until_.load(std::memory_order_acquire)) &&
         !window_held(database, now);
}

size_t LeaseBook::live_peers(Time now) const {
  std::lock_guard lock(mu_);
  return size_t(std::count_if(peers_.begin(), peers_.end(), [&](const auto& p) { return p.second.heard + p.second.reach > now; }));
}

size_t LeaseBook::pending_bumps() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

}  // namespace pgrelay::cache
