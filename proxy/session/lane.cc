// Pipelined reads on shared server connections (lane.h).
#include "proxy/session/lane.h"

#include <algorithm>

#include "protocol/error_fields.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/request/prepared_statements.h"
#include "proxy/request/statement_retry.h"

namespace pgrelay::proxy {
namespace {

namespace be = protocol::backend;

// Whether whole messages `answer` hold an ErrorResponse whose SQLSTATE is 57014 (query_canceled).
bool has_cancel_error(protocol::Bytes answer) {
  size_t at = 0;
  while (answer.size() - at >= 5) {
    const size_t end = at + 1 + protocol::load_u32(answer.data() + at + 1);
    if (end > answer.size()) return false;
    if (char(answer[at]) == be::kErrorResponse) {
      auto e = protocol::decode_error_notice(answer.subspan(at + 5, end - at - 5));
      return e.ok() && e->sqlstate == sqlstate::kQueryCanceled;
    }
    at = end;
  }
  return false;
}

}  // namespace

void LaneEntry::notify() {
  if (wake) wake->notify();
}

void LaneEntry::add(char type, protocol::Bytes body, ClientStatementPtr statement) {
  protocol::Writer w(wire);
  const size_t mark = w.begin(type);
  messages.push_back({.type = type, .offset = uint32_t(wire.size()), .length = uint32_t(body.size()),
                      .statement = std::move(statement)});
  w.bytes(body);
  w.end(mark);
  const ClientStatementPtr& named = messages.back().statement;
  if ((type == protocol::frontend::kBind || type == protocol::frontend::kDescribe) && named &&
      !named->server_name.empty())
    shared_statement = true;
}

bool LaneEntry::recycle() {
  // Kept only while this small: an OLTP answer, not a report's.
  constexpr size_t kKeep = 4 * 1024;
  if (wire.capacity() + answer.capacity() > kKeep) return false;
  auto kept_messages = std::move(messages);
  auto kept_wire = std::move(wire);
  auto kept_answer = std::move(answer);
  auto kept_failed = std::move(failed_parses);
  *this = LaneEntry{};
  kept_messages.clear();   // drops the statements they held
  kept_wire.clear();
  kept_answer.clear();
  kept_failed.clear();
  messages = std::move(kept_messages);
  wire = std::move(kept_wire);
  answer = std::move(kept_answer);
  failed_parses = std::move(kept_failed);
  return true;
}

bool Lane::Settings::same_contents(const Settings& o) const {
  static const SessionSets kNoSets;
  static const std::vector<Setting> kNoStartup;
  static const ParamMap kNoParams;
  const auto& a = sets ? *sets : kNoSets;
  const auto& b = o.sets ? *o.sets : kNoSets;
  return (startup ? *startup : kNoStartup) == (o.startup ? *o.startup : kNoStartup) &&
         (params ? *params : kNoParams) == (o.params ? *o.params : kNoParams) && a == b;
}

Lane::Lane(std::shared_ptr<Pool> pool, Settings settings, Limits limits, asio::any_io_executor ex, ProxyStats& stats,
           std::atomic<uint64_t>& schema_generation)
    : pool_(std::move(pool)),
      settings_(std::move(settings)),
      limits_(limits),
      ex_(std::move(ex)),
      stats_(stats),
      schema_generation_(schema_generation) {}

Lane::~Lane() { close(); }

bool Lane::statements_stale(const Conn& c) const {
  return c.server && c.server->statements.size() > 0 && c.server->statements_generation != schema_generation_.load();
}

void Lane::adopt(std::unique_ptr<ServerConnection> server, const std::shared_ptr<LaneEntry>& e) {
  auto c = std::make_shared<Conn>();
  // Bytes a login or settings query read past its last message come first.
  if (size_t unread = server->take_unread(); unread > 0) {
    c->in.assign(server->read_buffer().begin(), server->read_buffer().begin() + std::ptrdiff_t(unread));
  }
  c->server = std::move(server);
  c->reading = true;
  bringing_ = {};
  conns_.push_back(c);
  held_.push_back(c);
  // Cancelled while its client waited for the pool (a retry): the connection joins idle.
  if (!e->cancelled) push(c, e);
  refill(c);
  auto self = shared_from_this();
  asio::co_spawn(ex_, reader(c), [self, c](std::exception_ptr ex) {
    if (!ex) return;
    log_exception(ex, "pipelined connection: reading failed");
    self->fail(*c, "reading failed");
  });
  arm_sweep();
}

void Lane::push(const std::shared_ptr<Conn>& c, const std::shared_ptr<LaneEntry>& e, bool now) {
  ++e->attempts;
  e->streaming = false;
  e->started = {};
  stats_.pipelined.fetch_add(1, std::memory_order_relaxed);
  e->state = LaneEntry::State::kQueued;
  c->used = true;
  c->last_entry = std::chrono::steady_clock::now();
  // A connection that never drains still meets server_lifetime, RECONNECT and a reload: every
  // so often it is asked whether the pool wants it closed, and then takes no more.
  if (++c->taken % kLifetimeCheckEvery == 0 && pool_->close_needed(*c->server)) retire(c);
  size_t in_lane = waiting_.size();
  for (const auto& other : conns_) in_lane += other->queue.size();
  growth_.joined(in_lane);
  c->queue.push_back(e);
  route(*c, *e);
  if (c->writing || now) return;
  c->writing = true;
  // Alone on the connection: its backend waits for it, so it goes out now (a post would cost a
  // turn of the event loop and its epoll_wait, the whole gap to PgBouncer with one client).
  // Behind others: everything offered in this turn of the event loop goes out in one write.
  if (c->queue.size() == 1) {
    flush(c);
    return;
  }
  asio::post(ex_, [self = shared_from_this(), c] { self->flush(c); });
}

void Lane::flush(const std::shared_ptr<Conn>& c) {
  if (!c->dead && !c->pending.empty()) {
    auto cancelled = mark_written(*c);
    error_code ec;
    const size_t n = c->server->transport().send_now(asio::buffer(c->pending.data(), c->pending.size()), ec);
    if (ec) {
      fail(*c, "write failed: " + ec.message());
    } else if (n == c->pending.size()) {
      c->pending.clear();
      cancel_written(*c, cancelled);
    } else {
      // The socket is full (or TLS): the writer sends the rest, and the cancel after it.
      c->pending.erase(c->pending.begin(), c->pending.begin() + std::ptrdiff_t(n));
      auto self = shared_from_this();
      asio::co_spawn(ex_, writer(c, std::move(cancelled)), [self, c](std::exception_ptr ex) {
        if (!ex) return;
        log_exception(ex, "pipelined connection: writing failed");
        self->fail(*c, "writing failed");
      });
      return;
    }
  }
  c->writing = false;
  if (!c->reading) finish(*c);
}

std::shared_ptr<LaneEntry> Lane::mark_written(Conn& c) {
  const auto now = std::chrono::steady_clock::now();
  std::shared_ptr<LaneEntry> cancelled;
  for (auto& e : c.queue)
    if (e->state == LaneEntry::State::kQueued) {
      e->state = LaneEntry::State::kWritten;
      e->written = now;
      if (e != c.queue.front()) continue;
      e->started = now;
      if (e->cancelled) cancelled = e;
    }
  return cancelled;
}

void Lane::route(Conn& c, const LaneEntry& e) {
  ServerConnection& server = *c.server;
  for (const auto& m : e.messages) {
    const protocol::Bytes body(e.wire.data() + m.offset, m.length);
    if (StatementRouter::route(m.type, body, m.statement, server.statements, server.replies, c.pending)) continue;
    const auto* from = e.wire.data() + m.offset - 5;   // as it came
    c.pending.insert(c.pending.end(), from, from + 5 + m.length);
  }
}

awaitable<void> Lane::writer(std::shared_ptr<Conn> c, std::shared_ptr<LaneEntry> cancelled) {
  protocol::Buffer out;
  while (!c->dead && !c->pending.empty()) {
    out.clear();
    std::swap(out, c->pending);
    if (auto head = mark_written(*c)) cancelled = std::move(head);
    error_code ec;
    co_await c->server->transport().async_write(asio::buffer(out.data(), out.size()), ec);
    if (ec) fail(*c, "write failed: " + ec.message());
    cancel_written(*c, cancelled);
    cancelled.reset();
  }
  c->writing = false;
  if (!c->reading) finish(*c);
}

awaitable<void> Lane::reader(std::shared_ptr<Conn> c) {
  auto self = shared_from_this();
  std::span<std::byte> buf(c->server->read_buffer());
  while (!c->dead) {
    if (!dispatch(*c)) {
      log_error("pipelined connection ", c->server->target().describe(), ": invalid data from server");
      fail(*c, "invalid data from server");
      break;
    }
    refill(c);   // answers made room: the FIFO's next entries go on
    if (c->queue.empty() && c->in.empty()) {
      // Drained. A connection a cancel was sent on never serves again (the cancel may still be
      // on its way); a healthy one goes back at once when clients wait for the pool.
      if (!c->retiring && (c->poisoned || pool_->has_waiters() || pool_->close_needed(*c->server))) retire(c);
      if (c->retiring) break;
    }
    // A session slow to take a large answer holds the reader (and what is queued behind it).
    if (!c->queue.empty() && c->queue.front()->answer.size() >= kHoldAt) {
      auto held = std::make_shared<Event>(ex_);
      auto head = c->queue.front();
      head->drained = held;
      head->streaming = true;   // (on a retired connection answers are held whole until this much)
      head->notify();
      co_await held->wait();
      head->drained.reset();
      continue;
    }
    error_code ec;
    const size_t n = co_await c->server->transport().async_read_some(asio::buffer(buf.data(), buf.size()), ec);
    if (ec == asio::error::operation_aborted && c->retiring && c->queue.empty()) break;   // retire()'s wake-up
    if (ec) {
      fail(*c, "connection lost: " + ec.message());
      break;
    }
    c->in.insert(c->in.end(), buf.begin(), buf.begin() + std::ptrdiff_t(n));
    c->heard = std::chrono::steady_clock::now();
  }
  c->reading = false;
  if (!c->writing) finish(*c);
}

bool Lane::dispatch(Conn& c) {
  size_t at = 0;
  while (c.in.size() - at >= 5) {
    const char type = char(c.in[at]);
    const uint32_t len = protocol::load_u32(c.in.data() + at + 1);
    if (len < 4 || len > limits_.max_message_size) return false;
    if (c.in.size() - at - 1 < len) break;
    const protocol::Bytes message(c.in.data() + at, len + 1);
    at += len + 1;
    // FATAL: the server is ending this connection (an administrator, a shutdown), idle or not;
    // what has not answered is sent again elsewhere.
    if (type == be::kErrorResponse && message.size() > 5) {
      auto err = protocol::decode_error_notice(message.subspan(5));
      if (err.ok() && err->is_fatal()) {
        c.in.erase(c.in.begin(), c.in.begin() + std::ptrdiff_t(at));
        fail(c, "server ended the connection: " + std::string(err->message));
        return true;
      }
    }
    if (c.queue.empty()) {
      // Nothing was asked: a notice the server sends unprompted (a shutdown warning) is dropped;
      // anything else means the stream cannot be trusted.
      if (type == be::kNoticeResponse || type == be::kParameterStatus) continue;
      return false;
    }
    auto& e = *c.queue.front();
    if (type == be::kParameterStatus) c.poisoned = true;   // no longer exactly the lane's settings
    // Replies to what the router added (a Parse of a shared statement the connection lacked) are
    // not the client's; a stale shared statement (DDL since it was prepared) is sent again.
    ServerConnection& server = *c.server;
    if (type == be::kErrorResponse && StatementRetry::marks_stale(message.subspan(5), server.replies.front())) {
      schema_generation_.fetch_add(1);
      server.statements_generation = 0;
      e.stale = true;
    }
    ReplyFailures failures;
    const ReplyAction action = server.replies.on_reply(type, server.statements, &failures);
    for (auto& parsed : failures.parses) e.failed_parses.push_back(std::move(parsed));
    if (!e.cancelled && action != ReplyAction::kDrop) {
      if (action == ReplyAction::kAsParseComplete)
        protocol::encode(protocol::ParseComplete{}, e.answer);
      else
        e.answer.insert(e.answer.end(), message.begin(), message.end());
      if (e.state == LaneEntry::State::kWritten) e.state = LaneEntry::State::kAnswering;
    }
    if (type == be::kReadyForQuery) {
      auto done = std::move(c.queue.front());
      c.queue.pop_front();
      // A cancel meant for another entry of a poisoned connection may have hit this one: a
      // statement that may run twice runs again rather than fail with someone else's 57014.
      // So does one that found its shared statement stale (the ordinary path's StatementRetry).
      const bool hit_by_cancel = c.poisoned && has_cancel_error(protocol::Bytes(done->answer));
      const bool stale = done->stale && done->shared_statement;
      done->stale = false;
      if (!done->cancelled && !done->delivered && (hit_by_cancel || stale)) {
        done->answer.clear();
        done->failed_parses.clear();
        done->state = LaneEntry::State::kRetry;
        stats_.pipeline_retries.fetch_add(1, std::memory_order_relaxed);
      } else {
        done->state = LaneEntry::State::kDone;
        if (done->receiver && !done->cancelled) done->receiver->answer_ready(*done);
      }
      done->notify();
      // The entry written behind this one runs now; cancelled already, on the server too.
      if (!c.queue.empty() && c.queue.front()->state != LaneEntry::State::kQueued) {
        c.queue.front()->started = std::chrono::steady_clock::now();
        if (c.queue.front()->cancelled) cancel_head(c);
      }
    } else if (!e.cancelled && e.answer.size() >= kStreamAt && !c.poisoned) {
      e.streaming = true;
      e.notify();
    }
  }
  c.in.erase(c.in.begin(), c.in.begin() + std::ptrdiff_t(at));
  return true;
}

void Lane::fail(Conn& c, const std::string& why) {
  if (c.dead) return;
  c.dead = true;
  c.server->broken = true;
  const auto waiting = std::count_if(c.queue.begin(), c.queue.end(), [](const auto& e) { return !e->cancelled; });
  if (waiting > 0) log_info("pipelined connection lost (", why, "): ", waiting, " statements answered elsewhere");
  for (auto& e : c.queue) {
    if (e->cancelled) continue;
    // Nothing of it reached the client: it may run again. Else the client hears of the loss.
    e->state = e->delivered ? LaneEntry::State::kFailed : LaneEntry::State::kRetry;
    e->answer.clear();
    if (e->state == LaneEntry::State::kRetry) stats_.pipeline_retries.fetch_add(1, std::memory_order_relaxed);
    e->notify();
    if (e->drained) e->drained->notify();
  }
  c.queue.clear();
  c.pending.clear();
  auto it = std::find_if(conns_.begin(), conns_.end(), [&](const auto& p) { return p.get() == &c; });
  if (it != conns_.end()) conns_.erase(it);
  error_code ignored;
  c.server->transport().cancel(ignored);   // the reader and writer end, the last gives it back
  settle_waiting();
}

void Lane::retire(std::shared_ptr<Conn> c) {
  auto it = std::find(conns_.begin(), conns_.end(), c);
  if (it != conns_.end()) conns_.erase(it);
  if (c->retiring) return;
  c->retiring = true;
  if (c->queue.empty() && c->reading) {
    error_code ignored;
    c->server->transport().cancel(ignored);   // wakes the reader, which gives it back
  }
  settle_waiting();
}

void Lane::finish(Conn& c) {
  if (!c.server) return;
  if (c.poisoned || !c.queue.empty() || !c.server->replies.empty()) c.server->broken = true;
  std::erase_if(held_, [&](const auto& p) { return p.get() == &c; });
  pool_->release(std::move(c.server));
}

void Lane::describe(std::vector<ServerInfo>& out) const {
  for (const auto& c : held_) {
    if (!c->server) continue;
    // A poisoned one is closed when it comes back, like one RECONNECT marked.
    ServerInfo s = describe_server(*c->server, *pool_, "active", 0, c->poisoned || pool_->close_needed(*c->server));
    if (c->last_entry != std::chrono::steady_clock::time_point{}) s.request_time = to_system(c->last_entry);
    out.push_back(std::move(s));
  }
}

void Lane::arm_sweep() {
  if (sweeping_) return;
  sweeping_ = true;
  if (!sweep_) sweep_ = std::make_unique<asio::steady_timer>(ex_);
  sweep_->expires_after(kLinger);
  std::weak_ptr<Lane> weak = shared_from_this();
  sweep_->async_wait([weak](const error_code& ec) {
    auto self = weak.lock();
    if (!self) return;
    self->sweeping_ = false;
    if (ec) return;
    // Drained and unused for a whole period: back to the pool.
    std::vector<std::shared_ptr<Conn>> quiet;
    for (const auto& c : self->conns_) {
      if (c->queue.empty() && !c->used) quiet.push_back(c);
      c->used = false;
    }
    for (const auto& c : quiet) self->retire(c);
    // Grown for a lag that is over, or deep (LaneGrowth::sweep): the connection with the fewest
    // statements drains and goes.
    const auto verdict = self->growth_.sweep(int(self->conns_.size()));
    if (verdict == LaneGrowth::Verdict::kShrink && quiet.empty()) {
      self->retire(*std::min_element(self->conns_.begin(), self->conns_.end(), [](const auto& a, const auto& b) {
        return a->queue.size() < b->queue.size();
      }));
    }
    self->settle_waiting();
    self->close_silent();
    if (!self->held_.empty()) self->arm_sweep();
  });
}

void Lane::close() {
  auto conns = held_;
  for (const auto& c : conns) fail(*c, "shutting down");
  if (sweep_) sweep_->cancel();
}

}  // namespace pgrelay::proxy

namespace pgrelay::proxy {

std::shared_ptr<Lane> LaneSet::get(const std::shared_ptr<Pool>& pool, const Lane::Settings& settings,
                                   Lane::Limits limits, const asio::any_io_executor& ex, ProxyStats& stats,
                                   std::atomic<uint64_t>& schema_generation) {
  for (const auto& lane : lanes_)
    if (lane->pool() == pool.get() && lane->settings().same_objects(settings)) return lane;
  for (const auto& lane : lanes_)
    if (lane->pool() == pool.get() && lane->settings().same_contents(settings)) return lane;
  if (lanes_.size() >= kPruneAt) std::erase_if(lanes_, [](const auto& lane) { return lane->empty(); });
  lanes_.push_back(std::make_shared<Lane>(pool, settings, limits, ex, stats, schema_generation));
  return lanes_.back();
}

void LaneSet::describe(std::vector<ServerInfo>& out) const {
  for (const auto& lane : lanes_) lane->describe(out);
}

void LaneSet::close_all() {
  for (const auto& lane : lanes_) lane->close();
  lanes_.clear();
}

}  // namespace pgrelay::proxy
