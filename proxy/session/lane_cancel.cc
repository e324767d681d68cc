// Cancels in a lane (lane.h): a client's CancelRequest or its query_timeout (ClientSession::
// cancel_in_lane), carried out on the server once the statement runs, and lane connections that
// answer nothing after a cancel.
#include <algorithm>

#include "proxy/base/log.h"
#include "proxy/session/lane.h"

namespace pgrelay::proxy {

void Lane::cancel(const std::shared_ptr<LaneEntry>& e) {
  if (e->cancelled) return;
  e->cancelled = true;
  e->answer.clear();
  stats_.pipeline_cancels.fetch_add(1, std::memory_order_relaxed);
  e->notify();
  if (e->drained) e->drained->notify();
  // In the FIFO: out of it, never sent.
  if (e->waiting) {
    std::erase(waiting_, e);
    e->waiting = false;
    return;
  }
  for (const auto& c : held_) {
    auto it = std::find(c->queue.begin(), c->queue.end(), e);
    if (it == c->queue.end()) continue;
    // Running (at the head, written): cancelled on the server, and the connection retired.
    // Behind others, or not written yet (it goes with the next write all the same: the
    // connection's prepared statements and expected replies already count it): its answer is
    // dropped, and it is cancelled on the server when it comes to the head.
    if (it == c->queue.begin() && e->state != LaneEntry::State::kQueued) cancel_head(*c);
    return;
  }
}

void Lane::cancel_head(Conn& c) {
  if (!c.server || c.dead) return;
  c.poisoned = true;
  c.cancel_sent = std::chrono::steady_clock::now();
  auto target = *c.server->shared_target();
  const auto key = c.server->backend_key();
  asio::co_spawn(ex_, send_cancel_request(ex_, std::move(target), key), asio::detached);
}

void Lane::cancel_written(Conn& c, const std::shared_ptr<LaneEntry>& cancelled) {
  if (cancelled && !c.queue.empty() && c.queue.front() == cancelled) cancel_head(c);
}

void Lane::close_silent() {
  if (limits_.silent_after.count() <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<Conn>> silent;
  // Its head is the statement cancelled (one that another client's statement runs behind is
  // not silent, only slow: its own query_timeout cancels it), and nothing came since the cancel.
  for (const auto& c : held_)
    if (!c->dead && !c->queue.empty() && c->queue.front()->cancelled &&
        now - std::max(c->cancel_sent, c->heard) > limits_.silent_after)
      silent.push_back(c);
  for (const auto& c : silent) {
    log_warning("pipelined connection ", c->server->target().describe(), ": nothing read within query_timeout (",
                limits_.silent_after.count(), " ms) of a cancel: closing it");
    fail(*c, "no answer after a cancel");
  }
}

}  // namespace pgrelay::proxy
