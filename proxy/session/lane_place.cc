// Where a lane entry goes (lane.h): onto a connection that can take it, a connection the client
// brings from the pool, the lane's FIFO while every connection it may hold is busy, or the
// ordinary path.
#include <algorithm>

#include "proxy/session/lane.h"

namespace pgrelay::proxy {

bool Lane::can_take(const Conn& c, std::chrono::steady_clock::time_point now) const {
  return int(c.queue.size()) < limits_.depth && will_take(c, now);
}

bool Lane::will_take(const Conn& c, std::chrono::steady_clock::time_point now) const {
  if (c.dead || c.poisoned || c.retiring || statements_stale(c)) return false;
  if (c.queue.empty()) return true;
  const LaneEntry& head = *c.queue.front();
  // The head not written yet: it goes out with this one. Written: only while it is young.
  return head.state == LaneEntry::State::kQueued || now - head.written < limits_.max_wait;
}

bool Lane::stalled(const Conn& c, std::chrono::steady_clock::time_point now) {
  if (c.queue.empty()) return false;
  const auto started = c.queue.front()->started;
  return started != std::chrono::steady_clock::time_point{} && now - started >= LaneGrowth::kStall;
}

bool Lane::one_will_take(std::chrono::steady_clock::time_point now) const {
  return std::any_of(conns_.begin(), conns_.end(), [&](const auto& c) { return will_take(*c, now); });
}

Lane::Place Lane::offer(const std::shared_ptr<LaneEntry>& e) {
  const auto now = std::chrono::steady_clock::now();
  e->offered = now;
  std::vector<std::shared_ptr<Conn>> stale;
  for (const auto& c : conns_)
    if (!c->dead && statements_stale(*c)) stale.push_back(c);
  // DDL ran through pgrelay since it prepared its shared statements: out of the lane, and the
  // next attach_server() drops them.
  for (const auto& c : stale) retire(c);
  // Those waiting come first: whatever room there is goes to them.
  settle_waiting();
  if (!waiting_.empty()) {
    const auto conns = conns_;
    for (const auto& c : conns) refill(c);
  }
  // The first connection (in the order the lane took them) that can take it and has not stalled:
  // reads pack onto as few backends as keep up, each finding the next read in its socket, and the
  // others stand by for a stall (lane_growth.h). With every one stalled, the least busy.
  std::shared_ptr<Conn> best, packed;
  for (const auto& c : conns_) {
    if (!can_take(*c, now)) continue;
    if (!packed && !stalled(*c, now)) packed = c;
    if (!best || c->queue.size() < best->queue.size()) best = c;
  }
  if (packed) best = packed;
  const bool below = int(conns_.size()) < limits_.connections;
  // While clients wait for the pool, a lane keeps one connection: the others take no more, drain
  // and go to them (the reader retires them).
  const bool yield_to_pool = conns_.size() > 1 && pool_->has_waiters();
  if (waiting_.empty() && best) {
    if (best->queue.empty()) {
      push(best, e);
      return Place::kJoined;
    }
    if (yield_to_pool) return Place::kNotHere;
    // Every connection stalled (its statement running LaneGrowth::kStall): in a shallow lane,
    // another backend if the pool has one to spare, rather than a queue behind a stalled one.
    if (!packed) {
      growth_.lagged();
      if (below && !bringing(now) && growth_.shallow() && pool_->has_idle_or_room()) {
        bringing_ = now;
        return Place::kBringConnection;
      }
    }
    push(best, e);
    return Place::kJoined;
  }
  // None can take it. A lane grows (a connection from the pool, waiting for one as the ordinary
  // path would, and then the lane's clients share it) when it has none, when none will take
  // statements soon, or, while it is shallow, when those waiting in its FIFO wait longer than a
  // backend needs to keep up: in a deep (saturated) lane another backend only competes for the
  // cores, and one running the lane back to back serves more reads, with a shorter tail
  // (lane_growth.h; bench/README, eighth and fourteenth rounds).
  const bool one_will = one_will_take(now);
  const bool lagging = !waiting_.empty() && now - waiting_.front()->offered >= limits_.max_wait / 4;
  if (lagging) growth_.lagged();
  const bool coming = bringing(now);
  if (below && !coming && (!one_will || (lagging && growth_.shallow()))) {
    bringing_ = now;
    return Place::kBringConnection;
  }
  if (yield_to_pool || (!one_will && !coming)) return Place::kNotHere;
  // Every connection is busy but answering: wait for the first that answers, however long the
  // line (a lag the lane cannot grow out of included: one queue in arrival order is fair, a
  // second one in the pool's queue for what the lane leaves is not).
  e->waiting = true;
  e->turned_away = e->bring = false;
  waiting_.push_back(e);
  arm_sweep();
  return Place::kWaiting;
}

void Lane::refill(const std::shared_ptr<Conn>& c) {
  if (waiting_.empty() || (conns_.size() > 1 && pool_->has_waiters())) return;
  if (std::find(conns_.begin(), conns_.end(), c) == conns_.end()) return;   // retired or failed
  const auto now = std::chrono::steady_clock::now();
  bool pushed = false;
  while (!waiting_.empty() && can_take(*c, now)) {
    auto e = std::move(waiting_.front());
    waiting_.pop_front();
    e->waiting = false;
    push(c, e, true);
    e->notify();
    pushed = true;
  }
  // Written now, not at the end of this turn: the backend has answered and may have nothing left
  // to run, and the turn still has every session the answers woke ahead of it.
  if (pushed && !c->writing) {
    c->writing = true;
    flush(c);
  }
}

void Lane::settle_waiting() {
  if (waiting_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  const bool one_will = one_will_take(now);
  const bool below = int(conns_.size()) < limits_.connections;
  bool coming = bringing(now);
  // In order of arrival, so the first that may go on waiting ends the loop: while a connection
  // will take entries soon, all of them.
  while (!waiting_.empty()) {
    const bool expired = now - waiting_.front()->offered >= limits_.max_wait;
    if (one_will || (coming && !expired)) break;
    auto e = std::move(waiting_.front());
    waiting_.pop_front();
    e->waiting = false;
    e->turned_away = true;
    e->bring = !expired && below;   // (no connection will take it, or the loop had ended)
    if (e->bring) {
      bringing_ = now;
      coming = true;
    }
    e->notify();
  }
}

}  // namespace pgrelay::proxy
