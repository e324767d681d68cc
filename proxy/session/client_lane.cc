// Pipelining (session/lane.h, docs/pipelining.md): a lone autocommit read goes down the worker's
// lane for the client's pool and settings instead of taking a server connection of its own.
// What the pump does for an answer (observers, counters, session state, the cache's fill, the
// client's parameter view), deliver_lane_answer() does for the answer the lane hands over.
#include <utility>

#include "cache/policy.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/session/cache_observer.h"
#include "proxy/session/client_session.h"
#include "proxy/session/lane.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;
namespace be = protocol::backend;

// A lane connection that fails before a statement answered sends it again; this many connections
// at most (a server restart or pg_terminate_backend ends several at once).
constexpr int kMaxLaneAttempts = 5;
// How fresh the cache's catalog facts must be for a function call to count as a plain read.
constexpr std::chrono::milliseconds kLaneCatalogAge{60'000};

// The statement an extended-protocol request of messages [from, end) runs, if a lane may carry
// the request: Parse of the unnamed statement, Bind, Describe, one Execute of the portal it binds,
// Sync last; no Close, no Flush, no named Parse (a failing one would change the client's names).
// The statements it names must be routable on any connection: shared, or unnamed with their text.
const StatementAnalysis* extended_lane_statement(const std::vector<ClientMessage>& messages,
                                                 const std::vector<MessageForwarder::Scanned>& scanned, uint32_t from,
                                                 uint32_t end) {
  auto routable = [](const ClientStatementPtr& s) {
    if (!s) return false;
    if (!s->name.empty()) return !s->server_name.empty();
    return s->key != 0 && s->analysis && !s->analysis->text_truncated;
  };
  const StatementAnalysis* executes = nullptr;
  bool bound = false;
  for (uint32_t i = from; i < end; ++i) {
    const ClientMessage& m = messages[i];
    const protocol::Frame& f = scanned[i].frame;
    switch (f.type) {
      case fe::kParse:
        if (!m.statement || !m.statement->name.empty() || m.duplicate || bound) return nullptr;
        break;
      case fe::kBind:
        if (bound || !routable(m.statement)) return nullptr;
        bound = true;
        break;
      case fe::kDescribe: {
        auto d = protocol::decode_describe(f.body);
        if (!d.ok() || (d->kind == 'S' && !routable(m.statement))) return nullptr;
        break;
      }
      case fe::kExecute:
        if (executes || m.bind == kNoIndex || m.bind < from || !m.analysis) return nullptr;
        executes = m.analysis.get();
        break;
      case fe::kSync:
        if (i + 1 != end) return nullptr;
        break;
      default:
        return nullptr;
    }
  }
  if (scanned[end - 1].frame.type != fe::kSync) return nullptr;
  return executes;
}

}  // namespace

bool ClientSession::lane_eligible(uint32_t from) {
  if (!config_->pipelining || mode_ == conf::PoolMode::kSession || server_ || route_ || warming_ || terminating_)
    return false;
  // Exactly one whole request (a simple Query, or an extended one up to its Sync), nothing after
  // it in this read.
  const auto& messages = reader_->messages();
  if (from >= messages.size() || reader_->forwarder().has_unscanned_bytes()) return false;
  const uint32_t r = messages[from].request;
  if (r == kNoIndex || r >= reader_->requests().size()) return false;
  const Request& request = reader_->requests()[r];
  if (request.first != from || request.end != messages.size() || !request.complete || request.continued) return false;
  const auto& scanned = reader_->forwarder().scanned();
  for (uint32_t i = from; i < request.end; ++i)
    if (!scanned[i].whole_here || scanned[i].frame.body.size() != scanned[i].frame.body_length) return false;
  const StatementAnalysis* a = nullptr;
  if (request.kind == RequestKind::kQuery && request.end == from + 1)
    a = messages[from].analysis.get();
  else if (request.kind == RequestKind::kExtended && routing_)
    a = extended_lane_statement(messages, scanned, from, request.end);
  if (!a) return false;
  // Nothing of the session's own in the way: a pin, LISTEN, a retry, a query of pgrelay's own,
  // catalog facts the cache is waiting for. A paused database (PAUSE, SUSPEND): the client waits
  // at the gate on the ordinary path, and the lanes drain.
  if (session_state_->pinned() || exchange_->listen_hub || exchange_->retrying || exchange_->own_query ||
      (cache_observer_ && cache_observer_->wants_catalog()) || services_.gate.paused(pool_->key().database))
    return false;
  if (a->statement_count() != 1 || a->text_truncated || a->effects.any() || a->ddl || a->runs_code ||
      a->advances_sequences || a->reads_sequences || a->opens_transaction || !a->tx_controls.empty())
    return false;
  // A statement that may run twice: no row locks, no function that may write (lane.h).
  std::shared_ptr<const cache::FetchedCatalog> facts;
  if (cache_observer_) facts = services_.cache->catalog(cache_observer_->catalog_key(), kLaneCatalogAge);
  return judge_plain_read(*a, facts).verdict == cache::ReplicaVerdict::kReplica;
}

awaitable<int> ClientSession::place_in_lane(Lane& lane, const std::shared_ptr<LaneEntry>& entry, bool must) {
  Lane::Place place = lane.offer(entry);
  if (place == Lane::Place::kWaiting) {
    // In the lane's FIFO until a connection takes it (or it is cancelled, or the session ends:
    // take_lane_answer() answers those), or the lane turns it away.
    while (entry->waiting) {
      auto wake = std::make_shared<Event>(client_.get_executor());
      entry->wake = wake;
      co_await wake->wait();
      entry->wake.reset();
    }
    if (!entry->turned_away) co_return 1;
    place = entry->bring ? Lane::Place::kBringConnection : Lane::Place::kNotHere;
  }
  if (place == Lane::Place::kJoined) co_return 1;
  if (place == Lane::Place::kNotHere && !must) co_return 0;
  // A connection of its own from the pool, carrying the client's settings, given to the lane.
  const bool attached = co_await attach_server();
  if (!attached) co_return -1;
  if (cancel_slot_) (void)cancel_slot_->try_clear();   // a cancel goes to the lane (set_pipelined)
  lane.adopt(std::move(server_), entry);
  co_return 1;
}

awaitable<std::optional<bool>> ClientSession::run_in_lane(uint32_t from) {
  auto ex = co_await asio::this_coro::executor;
  if (!local_.lanes) local_.lanes = std::make_shared<LaneSet>();
  const Lane::Limits limits{.connections = config_->pipeline_connections,
                            .depth = config_->pipeline_depth,
                            .max_wait = config_->pipeline_max_wait,
                            .max_message_size = config_->max_message_size,
                            .silent_after = config_->query_timeout};
  // The lane of the last pipelined statement while the settings are the same objects; else the
  // worker's lane for them (matched by content: clients that made the same SETs share one).
  ClientExchange& x = *exchange_;
  if (!x.lane || x.lane_startup != startup_settings_ || x.lane_params != client_params_ ||
      x.lane_sets != session_state_->sets()) {
    const Lane::Settings settings{.startup = startup_settings_, .params = client_params_, .sets = session_state_->sets()};
    x.lane = local_.lanes->get(pool_, settings, limits, ex, services_.stats, services_.schema_generation);
    x.lane_startup = startup_settings_;
    x.lane_params = client_params_;
    x.lane_sets = session_state_->sets();
  }
  auto lane = x.lane;
  std::shared_ptr<LaneEntry> entry;
  if (!local_.spare_lane_entries.empty()) {
    entry = std::move(local_.spare_lane_entries.back());
    local_.spare_lane_entries.pop_back();
  } else {
    entry = std::make_shared<LaneEntry>();
  }
  const auto& messages = reader_->messages();
  const auto& scanned = reader_->forwarder().scanned();
  size_t bytes = 0;
  for (uint32_t i = from; i < messages.size(); ++i) bytes += 5 + scanned[i].frame.body.size();
  entry->wire.reserve(bytes);
  entry->messages.reserve(messages.size() - from);
  for (uint32_t i = from; i < messages.size(); ++i) {
    const protocol::Frame& f = scanned[i].frame;
    entry->add(f.type, f.body, messages[i].statement);
  }
  // A CancelRequest while it is in the lane is carried out here (cancel_in_lane), from before a
  // connection is attached, so that no cancel can go to a connection the lane shares.
  if (!x.lane_cancels) {
    std::weak_ptr<ClientSession> weak = shared_from_this();
    cancel_slot().set_pipeline_handler([weak] {
      if (auto self = weak.lock()) self->cancel_in_lane();
    });
    x.lane_cancels = true;
  }
  x.lane_entry = entry;
  cancel_slot_->set_pipelined(true);
  x.last_wait = {};
  const int placed = co_await place_in_lane(*lane, entry, false);
  if (placed <= 0) {
    cancel_slot_->set_pipelined(false);
    exchange_->lane_entry.reset();
    if (placed == 0) co_return std::nullopt;
    co_return false;
  }
  // It went: the forwarder lets go of it, the observers hear it was sent.
  const auto now = exchange_->events.active() ? EventClock::now() : EventClock::time_point{};
  (void)reader_->forwarder().emit(
      [&](size_t i, const protocol::Frame& f, protocol::Buffer&) {
        if (i >= from && exchange_->events.active()) note_sent(reader_->messages()[i], f, true, now);
        return Verdict::kReplace;   // nothing is written from here: the lane has its copy
      },
      [](size_t, size_t) {});
  meter_.on_request(entry->wire.size(), 1);
  // query_timeout until it is answered (counted from its start: client_timers.cc), then
  // cancel_in_lane().
  arm_query_timeout();
  const bool carried_on = co_await take_lane_answer(lane, entry);
  if (const auto& timer = timers_.peek().query) timer->cancel();
  cancel_slot_->set_pipelined(false);
  exchange_->lane_entry.reset();
  // Back to the worker's spares when nothing else holds it (its buffers kept when small).
  if (entry.use_count() == 1 && local_.spare_lane_entries.size() < WorkerLocal::kSpareLaneEntries &&
      entry->recycle())
    local_.spare_lane_entries.push_back(std::move(entry));
  co_return carried_on;
}

void ClientSession::cancel_in_lane(bool timed_out) {
  using State = LaneEntry::State;
  if (!exchange_.made() || !exchange_->lane_entry) return;   // it has been answered meanwhile
  const auto& entry = exchange_->lane_entry;
  if (entry->cancelled || entry->state == State::kDone || entry->state == State::kFailed) return;
  if (timed_out)
    log_info("client ", id_, " ", peer_, ": query_timeout (", config_->query_timeout.count(),
             " ms), cancelling its pipelined statement");
  else
    log_info("client ", id_, " ", peer_, ": cancelling its pipelined statement");
  exchange_->lane->cancel(entry);
}

awaitable<bool> ClientSession::take_lane_answer(std::shared_ptr<Lane> lane, std::shared_ptr<LaneEntry> entry) {
  using State = LaneEntry::State;
  protocol::Buffer out;
  // The lane may write the answer itself while the session waits (answer_ready); never once
  // this frame is gone (shutdown destroys it while it waits).
  struct Receiving {
    LaneEntry& entry;
    ~Receiving() { entry.receiver = nullptr; }
  } receiving{*entry};
  for (;;) {
    if (!entry->news() && !entry->cancelled && !terminating_) {
      auto wake = std::make_shared<Event>(client_.get_executor());
      entry->wake = wake;
      entry->receiver = this;
      co_await wake->wait();
      entry->receiver = nullptr;
      entry->wake.reset();
    }
    if (terminating_) {
      lane->cancel(entry);
      co_return false;
    }
    if (entry->cancelled) {
      // Answered as PostgreSQL answers a cancelled statement; whatever the server still sends
      // for it is dropped by the lane.
      out.clear();
      protocol::encode_error_response({"ERROR", sqlstate::kQueryCanceled, "canceling statement due to user request", "", ""}, out);
      protocol::encode(protocol::ReadyForQuery{'I'}, out);
      const bool written = co_await deliver_lane_answer(out);
      co_return written;
    }
    if (entry->state == State::kRetry) {
      if (entry->attempts >= kMaxLaneAttempts) {
        co_await send_error(fatal(sqlstate::kConnectionFailure,
                                  "server connection lost (" + std::to_string(entry->attempts) +
                                      " server connections failed before answering the statement)"));
        co_return false;
      }
      const int placed = co_await place_in_lane(*lane, entry, true);
      if (placed < 0) co_return false;
      continue;
    }
    if (entry->state == State::kFailed) {
      co_await send_error(fatal(sqlstate::kConnectionFailure, "server connection lost"));
      co_return false;
    }
    // An unnamed Parse the server refused: the client's name stands for nothing now, as in PostgreSQL.
    for (const auto& parsed : entry->failed_parses) reader_->forget_failed(parsed);
    entry->failed_parses.clear();
    if (entry->answer.empty()) continue;
    const bool done = entry->state == State::kDone;
    const size_t early = std::exchange(entry->written_early, 0);
    out.clear();
    std::swap(out, entry->answer);
    if (entry->drained) entry->drained->notify();
    entry->delivered = true;
    const bool written = co_await deliver_lane_answer(out, early);
    if (!written) {
      if (!done) lane->cancel(entry);
      co_return false;
    }
    if (done) {
      if (entry->answer.empty()) {   // its capacity, for the entry's reuse
        out.clear();
        std::swap(out, entry->answer);
      }
      co_return true;
    }
  }
}

void ClientSession::answer_ready(LaneEntry& e) {
  // Written as deliver_lane_answer() would write it, which changes an answer only when a RESET
  // ends the transaction (settle_session_state): never a lane's plain read, and nothing the
  // session tracks is waiting for this ReadyForQuery (settles_nothing).
  if (terminating_ || e.answer.empty() || (screening_ && !session_state_->settles_nothing())) return;
  protocol::Bytes rest(e.answer.data(), e.answer.size());
  if (auto ok = write_client_now(rest); ok && !*ok) return;   // failed: the session's write finds out
  e.written_early = e.answer.size() - rest.size();
}

awaitable<bool> ClientSession::deliver_lane_answer(protocol::Buffer& answer, size_t early) {
  const bool observed = exchange_->events.active();
  const auto now = observed ? EventClock::now() : EventClock::time_point{};
  size_t at = 0;
  while (answer.size() - at >= 5) {
    const char type = char(answer[at]);
    const size_t end = at + 1 + protocol::load_u32(answer.data() + at + 1);
    const protocol::Bytes body(answer.data() + at + 5, end - at - 5);
    switch (type) {
      case be::kReadyForQuery: {
        meter_.on_ready_for_query('I');
        if (cache_observer_) {
          cache_observer_->transaction_ended();
          refresh_cache_key();
        }
        if (screening_) {
          protocol::Buffer ours;   // ParameterStatus before it, when a RESET went back to startup values
          settle_session_state('I', body, ours);
          if (!ours.empty() && early > 0) {   // answer_ready() made sure this cannot happen
            log_error("client ", id_, " ", peer_, ": settings reset after the answer was written; closing");
            co_return false;
          }
          if (!ours.empty()) {     // the ReadyForQuery is the answer's last message
            if (observed) exchange_->events.message(type, body, now);
            answer.resize(at);
            answer.insert(answer.end(), ours.begin(), ours.end());
            if (observed) exchange_->events.emitted(answer.size());
            at = answer.size();
            continue;
          }
        }
        break;
      }
      case be::kParameterStatus:
        if (auto ps = protocol::decode_parameter_status(body); ps.ok()) set_client_param(ps->name, ps->value);
        break;
      case be::kErrorResponse:
        if (screening_) session_state_->on_error();
        break;
      default:
        break;
    }
    if (observed) {
      exchange_->events.message(type, body, now);
      exchange_->events.emitted(end);
    }
    at = end;
  }
  protocol::Bytes unwritten(answer.data() + early, answer.size() - early);
  bool ok = true;
  if (unwritten.empty()) {
    // answer_ready() wrote it all
  } else if (auto now = write_client_now(unwritten)) {
    ok = *now;
  } else {
    ok = co_await write_client(unwritten);
  }
  if (!ok) co_return false;
  meter_.on_reply(answer.size());
  if (observed) exchange_->events.end_chunk(answer);
  if (notifications_due()) {
    const bool written = co_await write_notifications();
    if (!written) co_return false;
  }
  co_return true;
}

}  // namespace pgrelay::proxy
