// A client's requests: read, classified, decided (answered here or sent to a server), routed and forwarded.
#include <algorithm>
#include <array>

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/base/buffer_pool.h"
#include "proxy/base/log.h"
#include "proxy/session/acquire.h"
#include "proxy/session/cache_observer.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;

}  // namespace

awaitable<bool> ClientSession::forward(bool resumed, error_code ec) {
  auto ex = co_await asio::this_coro::executor;
  // On the heap: this frame lives as long as the client, and an ErrorSpec is five strings.
  std::unique_ptr<protocol::ErrorSpec> violation;
  std::array<std::byte, 4> held_header{};   // an incomplete header between reads (MessageForwarder::held)
  bool more_ready = false;                   // the last read filled the buffer: read again at once
  bool waited = resumed;                     // a parked wait has just completed
  bool ended = false;                        // a local answer ended the session (FATAL)
  while (!ended) {
    // Backpressure on pipelining: a client that keeps sending and never reads is not read
    // either until the server has answered half of its backlog.
    if (server_ && server_->in_flight >= Exchange::kMaxRequestsInFlight && pump_running()) {
      auto backlog = std::make_shared<Event>(ex);
      exchange_->backlog = backlog;
      co_await backlog->wait();
      exchange_->backlog.reset();
      if (terminating_) break;
    }
    // Wait for bytes before taking a buffer: an idle client holds none.
    if (!more_ready) {
      if (!waited) {
        if (!server_ || server_->in_flight == 0) arm_idle_timer();   // the client's turn
        awaiting_client_ = true;
        co_await client_.wait_readable(ec);   // at once when TLS already holds bytes
      }
      awaiting_client_ = false;
      waited = false;
      disarm_idle_timer();
      if (timers_.peek().idle_error) {
        violation = std::move(timers_->idle_error);
        break;
      }
      // Online restart: between transactions, before reading its next request, the client may go
      // to the new process (offer_handoff() cancelled the wait, or its request has just arrived).
      if (services_.handoff.load(std::memory_order_relaxed) && !handoff_refused_ && !terminating_) {
        const bool gone = co_await hand_off();
        if (gone) break;
      }
      if (handoff_poked_ && !terminating_ && ec == asio::error::operation_aborted) {
        handoff_poked_ = false;   // woken for a hand-off that did not happen: wait again
        ec = {};
        continue;
      }
      handoff_poked_ = false;
      if (ec) break;
    }
    PooledBuffer pooled;
    std::span<std::byte> buf(pooled.get());
    size_t held = reader_ ? reader_->held() : 0;
    std::copy_n(held_header.begin(), held, buf.begin());
    size_t n = client_.read_some(asio::buffer(buf.data() + held, buf.size() - held), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      more_ready = false;
      // Nothing read yet and nothing to read: woken from the park by the readiness epoll reported
      // for the startup packet a login read without waiting, delivered only once the client was
      // parked. Back to the park, holding nothing (in forward() an idle client would keep its
      // frames, reader and observers: 3.7 KiB more per idle client).
      if (can_park()) {
        ec = {};
        park();
        co_return true;
      }
      continue;
    }
    if (ec) break;
    more_ready = n == buf.size() - held;
    // The reader comes with the client's first bytes: a client that only logs in holds none.
    if (!reader_) make_reader();

    // 1. Classify, before any server is taken.
    auto scanned = reader_->scan(buf, n);
    if (!scanned.ok()) {
      violation = std::make_unique<protocol::ErrorSpec>(fatal(scanned.error().sqlstate, scanned.error().message));
    } else if (reader_->violation()) {
      violation = std::make_unique<protocol::ErrorSpec>(*reader_->violation());
    }
    if (violation) {
      // None of this chunk goes on, but an earlier chunk may have carried the start of the bad
      // message: the server connection's stream cannot be trusted any more.
      if (server_) server_->broken = true;
      break;
    }

    // 2. Decide: the requests at the front that are answered here, while nothing is ahead of them.
    exchange_->cache_probe.request = nullptr;   // a new scan: its requests are looked up afresh
    uint32_t local_until = 0;
    if (!reader_->requests().empty() && local_answer_possible(reader_->requests().front(), 0)) {
      Request& front = reader_->requests().front();
      bool local = answered_locally(front) || notifications_due();
      if (!local && exchange_->cache_probe.in_flight) {   // another session is filling this answer
        co_await wait_for_fill(front);
        local = exchange_->cache_probe.hit != nullptr;
      }
      if (!local && exchange_->cache_probe.shared) {   // the Redis tier decides hit or miss
        co_await ask_shared_cache();
        local = exchange_->cache_probe.hit != nullptr;
      }
      if (local) {
        local_until = co_await answer_locally(ended);
        if (ended) break;
      }
    }

    // 3. Acquire, 4. route and 5. forward what remains.
    const auto& messages = reader_->messages();
    const bool needs_server = local_until < messages.size() || reader_->forwarder().has_unscanned_bytes();
    if (needs_server) {
      // A read that failed on a replica is being sent to the primary: what comes next follows it.
      if (auto rerouting = exchange_->retrying) co_await rerouting->wait();
      exchange_->last_wait = {};
      // Pipelining: a lone autocommit read may go down the worker's shared lane instead.
      std::optional<bool> laned;
      if (!server_ && config_->pipelining && lane_eligible(local_until)) {
        laned = co_await run_in_lane(local_until);
        if (laned && !*laned) break;
      }
      if (!laned) {
        // A replica's connection still attached (a pipelining client, or its pump has not given
        // it back yet) while what comes now needs the primary: it goes back first.
        if (route_ && server_ && route_->attached >= 0 && !replica_eligible(local_until)) co_await leave_replica();
        // SET TRANSACTION READ ONLY after a plain BEGIN: the transaction moves to a replica.
        if (route_ && server_ && route_->attached < 0 && !route_->begun.empty()) {
          const bool carry_on = co_await move_begun_transaction(local_until);
          if (!carry_on) break;
        }
        if (!server_ && mode_ != conf::PoolMode::kSession) {
          const int replica = route_ ? choose_replica(local_until) : -1;
          if (!co_await attach_server(replica)) break;
        }
        bool sent = false;
        {
          // The request holds the connection until it is written: every co_await below lets the
          // pump run, and a pump finishing the previous transaction would otherwise give the
          // connection back under it.
          RequestPending pending(*exchange_);
          if (!server_) break;   // session mode lost its connection: nothing can carry this
          // A query of pgrelay's own still on the connection (the pump's, between transactions)
          // goes first; one the server did not answer cost the connection, not the client.
          if (auto own = exchange_->own_query) co_await own->wait();
          if (server_->broken) {
            const bool replaced = co_await replace_lost_server(local_until);
            if (!replaced) break;
          }
          // A RESET took the attached server back to its defaults: the client's settings first.
          if (server_stale_ && server_->in_flight == 0 && !server_->broken && !exchange_->retrying) {
            const bool resynced = co_await resync_server();
            if (!resynced) break;
          }
          // The cache wanted catalog facts for what goes out now: fetched first, so it can fill.
          if (cache_observer_ && cache_observer_->wants_catalog() && server_->in_flight == 0 && !server_->unsynced &&
              server_->tx_status == 'I' && !server_->broken) {
            const bool fetched = co_await prefetch_cache_catalog(local_until);
            if (!fetched) {
              const bool replaced = co_await replace_lost_server(local_until);
              if (!replaced) break;
            }
          }
          // A CALL or DO that may COMMIT inside: with the Redis tier, every instance hears of its
          // window before it runs.
          if (cache_observer_ && shared_tier() && cache_observer_->opens_window(messages, local_until)) {
            co_await open_shared_window();
          }
          // A new attachment, or a release a pending cancel refused after the pump had stopped.
          // (A read the pump moved to the primary meanwhile replaced server_; one it could not
          // attach left none: send_to_server() says so.)
          if (server_ && !server_->broken && !pump_running()) start_pump(ex);
          sent = co_await send_to_server(local_until);
        }
        if (!sent) break;
        // The previous transaction's last reply may have come meanwhile: then the pump left the
        // release to us.
        if (can_release_now()) co_await release_between_transactions();
      }
    } else if (server_ && !server_->broken && !pump_running()) {
      start_pump(ex);   // answered here while attached (session mode): server messages flow again
    }
    if (reader_->terminated()) break;
    reader_->forwarder().keep_held(buf);
    std::copy_n(buf.begin(), reader_->held(), held_header.begin());
  }
  forwarding_ = false;
  if (server_ && reader_ && !reader_->forwarder().framer().at_boundary()) server_->broken = true;   // the server got part of a message
  if (violation || terminating_) client_.cancel(ec);
  if (pump_running()) co_await stop_pump();   // (asked first: a coroutine frame for nothing otherwise)
  if (exchange_.made()) exchange_->events.abandon_all(EventClock::now());
  if (violation) co_await send_error(*violation);
  co_return false;
}

awaitable<bool> ClientSession::send_to_server(uint32_t local_until) {
  // A stale statement's request is being sent again: what follows it must follow it.
  if (auto retrying = exchange_->retrying) co_await retrying->wait();
  // The pump is running a query of pgrelay's own on the connection: the client's comes after
  // (forward() holds the connection meanwhile: request_pending).
  if (auto own = exchange_->own_query) co_await own->wait();
  if (!server_ || server_->broken) co_return false;
  const auto& messages = reader_->messages();
  const auto now = exchange_->events.active() ? EventClock::now() : EventClock::time_point{};
  int requests = 0;                  // Query, FunctionCall, Sync: each gets one ReadyForQuery
  std::optional<bool> unsynced;      // extended-protocol state at the end, if it changed
  const bool first_is_idle = server_->in_flight == 0 && !server_->unsynced;
  // A lone extended request outside a transaction can be sent again if a shared statement it
  // uses turns out stale (StatementRetry): keep its messages until its first real reply.
  bool retryable = routing_ && first_is_idle && server_->tx_status == 'I';
  if (retryable) exchange_->retry.begin();
  auto chunk = reader_->forwarder().emit(
      [&](size_t i, const protocol::Frame& f, protocol::Buffer& replacement) {
        if (i < local_until) return Verdict::kReplace;   // answered here: dropped
        const ClientMessage& m = messages[i];
        const int ahead = requests;      // requests of this chunk sent before this message
        switch (f.type) {
          case fe::kQuery: case fe::kFunctionCall: ++requests; break;
          case fe::kSync: ++requests; unsynced = false; break;
          case fe::kParse: case fe::kBind: case fe::kDescribe: case fe::kExecute: case fe::kClose:
            unsynced = true; break;
          default: break;
        }
        if (exchange_->events.active()) note_sent(m, f, first_is_idle && ahead == 0, now);
        if (retryable) {
          if (reader_->forwarder().scanned()[i].whole_here && f.body.size() == f.body_length)
            exchange_->retry.add(f.type, f.body, m.statement);
          else
            retryable = false;
        }
        if (m.analysis && (f.type == fe::kQuery || f.type == fe::kExecute)) {
          // What running it may leave for the end of its transaction to deal with.
          const StatementAnalysis& a = *m.analysis;
          if (a.ddl) exchange_->ddl_sent = true;
          if (a.advances_sequences) exchange_->tx_advanced_sequences = true;
          if (route_ && (a.advances_sequences || a.runs_code)) route_->wrote = true;   // read-your-writes
          if (a.runs_code && mode_ != conf::PoolMode::kSession) exchange_->audit_settings = true;
        }
        if (exchange_->listen_hub && f.type == fe::kQuery && m.analysis &&
            (m.analysis->effects.has(analyzer::EffectKind::kUnlisten) ||
             m.analysis->effects.has(analyzer::EffectKind::kUnlistenAll)))
          unlisten_sent(*m.analysis);
        if (routing_ && m.duplicate) {
          refuse_duplicate_parse(f.body, m.statement, replacement);
          retryable = false;
          return Verdict::kReplace;
        }
        if (screening_ && f.inspected && (f.type == fe::kQuery || f.type == fe::kParse) && m.analysis &&
            screen_statement(f.type, *m.analysis, m.statement, replacement)) {
          retryable = false;
          return Verdict::kReplace;
        }
        if (!routing_) {
          // Names go to the server as they are; the replies are still matched to what asked them.
          server_->replies.expect(f.type, f.type == fe::kParse ? m.statement : nullptr);
          return Verdict::kPass;
        }
        if (StatementRouter::route(f.type, f.body, m.statement, server_->statements, server_->replies, replacement))
          return Verdict::kReplace;
        return Verdict::kPass;
      },
      [](size_t, size_t) {});
  // Exactly one request, ending with its Sync, that uses a shared statement.
  if (!(retryable && requests == 1 && unsynced == false && exchange_->retry.worth_keeping())) exchange_->retry.disarm();
  if (chunk.send.empty()) co_return true;
  if (route_) note_replica_request(chunk.send, first_is_idle && requests == 1, local_until);   // for a retry or a move
  if (server_->in_flight == 0 && requests > 0) arm_query_timeout();
  server_->in_flight += requests;
  if (unsynced) server_->unsynced = *unsynced;
  error_code ec;
  co_await server_->transport().async_write(asio::buffer(chunk.send.data(), chunk.send.size()), ec);
  if (ec) {
    server_->broken = true;
    co_return false;
  }
  meter_.on_request(chunk.send.size(), requests);
  co_return true;
}

void ClientSession::note_sent(const ClientMessage& m, const protocol::Frame& f, bool first_request,
                              EventClock::time_point now) {
  // (Without a server connection the statement went to a lane: outside a transaction.)
  const char tx = first_request ? (server_ ? server_->tx_status : 'I') : 0;
  switch (f.type) {
    case fe::kQuery: {
      const size_t count = m.analysis ? m.analysis->statement_count() : 0;
      for (size_t k = 0; k < count; ++k) {
        StatementStart s;
        s.analysis = m.analysis;
        s.index = uint32_t(k);
        s.text = m.analysis->statement_text(k);
        s.tx_status = tx;   // the status its request started in, as for every Execute of a batch
        s.wait = exchange_->last_wait;
        exchange_->events.statement_sent(std::move(s), now);
      }
      exchange_->events.request_end_sent();
      break;
    }
    case fe::kExecute: {
      StatementStart s;
      s.analysis = m.analysis;
      s.extended = true;
      if (m.analysis) s.text = m.analysis->statement_text(0);   // the whole text when it is not split
      if (m.statement) s.statement_name = m.statement->name;
      if (auto e = protocol::decode_execute(f.body); e.ok()) s.portal = e->portal;
      if (m.bind != kNoIndex) s.bind = reader_->forwarder().scanned()[m.bind].frame.body;
      s.tx_status = tx;
      s.wait = exchange_->last_wait;
      exchange_->events.statement_sent(std::move(s), now);
      break;
    }
    case fe::kSync: case fe::kFunctionCall:
      exchange_->events.request_end_sent();
      break;
    default:
      break;
  }
}

}  // namespace pgrelay::proxy
