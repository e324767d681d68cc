// The server->client direction of a client session (the pump), and giving the server connection back.
#include <algorithm>

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/session/client_session.h"
#include "proxy/session/cache_observer.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {
namespace {

namespace be = protocol::backend;

bool is_statement_reset(std::string_view tag) { return tag == "DISCARD ALL" || tag == "DEALLOCATE ALL"; }

}  // namespace

void ClientSession::start_pump(const asio::any_io_executor& ex) {
  exchange_->stop_pump = false;
  exchange_->pump_done = std::make_shared<Event>(ex);
  auto self = shared_from_this();
  asio::co_spawn(ex, pump(exchange_->pump_done), [self, done = exchange_->pump_done](std::exception_ptr e) {
    if (!e) return;
    log_exception(e, "client " + std::to_string(self->id_) + ": server->client forwarding failed");
    done->notify();
    if (auto backlog = self->exchange_->backlog) backlog->notify();
    if (self->route_ && self->route_->drained) self->route_->drained->notify();
  });
}

bool ClientSession::can_release_now() const {
  return mode_ != conf::PoolMode::kSession && server_ && !terminating_ && !exchange_->retrying && server_->at_rest() &&
         server_->tx_status == 'I' && !exchange_->request_pending && (!reader_ || reader_->forwarder().framer().at_boundary()) &&
         !session_state_->pinned();
}

awaitable<void> ClientSession::pump(std::shared_ptr<Event> done) {
  auto self = shared_from_this();
  ServerConnection* server = server_.get();
  MessageForwarder fwd(config_->max_message_size);
  for (char t : {be::kReadyForQuery, be::kParameterStatus, be::kErrorResponse, be::kCommandComplete,
                 be::kParseComplete, be::kCloseComplete})
    fwd.framer().inspect(t);
  if (exchange_->n_plus_one_observer) {
    // N+1 lineage: column names, and a glimpse of rows that arrive whole (never a copy).
    fwd.framer().inspect(be::kRowDescription);
    fwd.framer().peek(be::kDataRow);
  }
  // A replica shutting down warns before it closes (57P01): its read goes to the primary.
  if (route_) fwd.framer().inspect(be::kNoticeResponse);
  std::span<std::byte> buf(server->read_buffer());
  // Bytes login/run() read past their last message come first.
  size_t n = server->take_unread();
  bool transaction_block_in_statement_mode = false;
  std::optional<std::string> reroute;   // why a read failed on a replica goes to the primary (client_replicas.cc)
  while (!exchange_->stop_pump) {
    error_code ec;
    if (n == 0) {
      size_t held = fwd.held();
      n = co_await server->transport().async_read_some(asio::buffer(buf.data() + held, buf.size() - held), ec);
      if (ec) {
        if (ec != asio::error::operation_aborted) {
          server->broken = true;
          if (read_again_on_primary_possible({})) {
            reroute = "connection lost: " + ec.message();
            break;
          }
          if (!exchange_->server_fatal && !terminating_) {
            if (!exchange_->server_silent)
              log_warning("client ", id_, " ", peer_, ": server connection ", server->target().describe(),
                          " lost: ", ec.message());
            co_await send_error(fatal(sqlstate::kConnectionFailure,
                                      exchange_->server_silent
                                          ? "server connection lost: no answer to the query or its cancel within query_timeout"
                                          : "server connection lost"));
          }
          error_code ignored;
          client_.close(ignored);   // ends the client->server direction too
        }
        break;
      }
    }
    const bool observed = exchange_->events.active();
    const auto now = observed ? EventClock::now() : EventClock::time_point{};
    // Nothing of a message is half-written to the client: an error of ours could follow.
    const bool client_at_boundary = fwd.framer().at_boundary();
    auto chunk = fwd.process(buf, n, [&](const protocol::Frame& f, protocol::Buffer& replacement) {
      if (exchange_->retry.armed() &&
          exchange_->retry.on_server_message(f.type, f.body, server->replies.front(), server->in_flight) ==
              StatementRetry::Step::kSwallow) {
        // A stale shared statement: the client sees none of this attempt (resend_stale_request).
        if (!exchange_->retrying) exchange_->retrying = std::make_shared<Event>(client_.get_executor());
        if (f.type == be::kReadyForQuery) {
          if (!f.body.empty()) server->tx_status = char(f.body[0]);
          if (server->in_flight > 0) --server->in_flight;
        }
        (void)server->replies.on_reply(f.type, server->statements);
        return Verdict::kReplace;
      }
      if (reroute) return Verdict::kReplace;   // nothing more of the replica's reaches the client
      if (route_ && (f.type == be::kErrorResponse || f.type == be::kNoticeResponse) &&
          read_again_on_primary_possible(f.body)) {
        // This chunk is not written: none of the read reached the client.
        reroute = f.type == be::kErrorResponse ? "recovery conflict or shutdown" : "shutdown";
        return Verdict::kReplace;
      }
      protocol::Buffer ours;   // pgrelay's message(s) in place of this one, when it is forwarded
      switch (f.type) {
        case be::kReadyForQuery:
          if (!f.body.empty()) server->tx_status = char(f.body[0]);
          meter_.on_ready_for_query(server->tx_status);
          if (screening_) settle_session_state(server->tx_status, f.body, ours);
          // Its writes are visible to everyone now: invalidate before the client hears of it.
          if (cache_observer_ && server->tx_status == 'I') {
            cache_observer_->transaction_ended();
            refresh_cache_key();   // settled SETs of search_path decide how the next writes resolve
          }
          if (route_ && route_->wrote && server->tx_status == 'I') note_committed_write();
          if (server->tx_status == 'I' && exchange_->tx_advanced_sequences) {
            exchange_->tx_advanced_sequences = false;
            exchange_->sequences_on_pin = session_state_->pinned();
          }
          if (exchange_->ddl_sent && server->tx_status == 'I') {
            // Its transaction is over: connections prepared before it drop their shared statements.
            exchange_->ddl_sent = false;
            services_.schema_generation.fetch_add(1);
          }
          requests_done(*server, 1);
          if (mode_ == conf::PoolMode::kStatement && server->tx_status != 'I' && server->in_flight == 0)
            transaction_block_in_statement_mode = true;
          break;
        case be::kParameterStatus:
          if (auto ps = server->note_parameter_status(f.body))
            set_client_param(ps->name, ps->value);
          break;
        case be::kErrorResponse:
          if (auto e = protocol::decode_error_notice(f.body); e.ok() && e->is_fatal()) exchange_->server_fatal = true;
          if (routing_ && StatementRetry::marks_stale(f.body, server->replies.front())) {
            // Not sent again (inside a transaction, or pipelined): the client sees the error, and
            // every connection drops its shared statements before its next use.
            services_.schema_generation.fetch_add(1);
            server->statements_generation = 0;
          }
          if (screening_) {
            session_state_->on_error();
            if (!exchange_->rejections.empty()) (void)rejected_error(f.body, ours);
          }
          break;
        case be::kCommandComplete:
          if (auto cc = protocol::decode_command_complete(f.body); cc.ok()) {
            if (is_statement_reset(cc->tag)) {
              // The client dropped every prepared statement of the connection, ours included.
              server->statements.clear();
              if (reader_) reader_->forget_statements();
            }
            if (screening_ && (cc->tag == "COMMIT" || cc->tag == "PREPARE TRANSACTION")) session_state_->on_committed();
            // Visible to other sessions now: bumped before the client hears of it.
            if (cache_observer_ && cc->tag == "COMMIT") cache_observer_->commit_completed();
          }
          break;
      }
      Verdict verdict = Verdict::kPass;
      ReplyFailures failures;   // what an extended-protocol error cost: skipped Queries, failed Parses
      const ReplyAction action = server->replies.on_reply(f.type, server->statements, &failures);
      if (!failures.parses.empty() && reader_)
        for (const auto& parsed : failures.parses) reader_->forget_failed(parsed);
      // Queries sent before the Sync get no ReadyForQuery: they are over now.
      if (failures.skipped_requests > 0) requests_done(*server, int(failures.skipped_requests));
      switch (action) {
        case ReplyAction::kForward:
          if (ours.empty()) break;
          replacement = std::move(ours);
          verdict = Verdict::kReplace;
          break;
        case ReplyAction::kDrop: return Verdict::kReplace;   // the client never sees it: no event either
        case ReplyAction::kAsParseComplete:
          protocol::encode(protocol::ParseComplete{}, replacement);
          return Verdict::kReplace;
      }
      if (observed) {
        // What the client gets: pgrelay's own error in place of a refused statement's.
        const bool ours_error = f.type == be::kErrorResponse && verdict == Verdict::kReplace && replacement.size() > 5;
        exchange_->events.message(f.type, ours_error ? protocol::Bytes(replacement).subspan(5) : f.body, now,
                                  failures.skipped_requests);
      }
      return verdict;
    }, [&](size_t out_end) {
      if (observed) exchange_->events.emitted(out_end);
    });
    n = 0;
    if (!chunk.ok()) {
      log_error("client ", id_, ": invalid data from server ", server->target().describe(), ": ", chunk.error().message);
      server->broken = true;
      // What follows cannot be framed, so the connection ends; the client hears why unless it
      // is inside a message (then it sees the connection close).
      if (client_at_boundary && !terminating_)
        co_await send_error(fatal(chunk.error().sqlstate, "invalid data from server: " + chunk.error().message));
      error_code ignored;
      client_.close(ignored);
      break;
    }
    if (reroute) {
      server->broken = true;
      break;
    }
    // Commits in this chunk: every pgrelay of the cluster hears of them before the client does.
    if (cache_observer_ && cache_observer_->owes_shared_bumps()) co_await bump_shared_cache();
    if (!chunk->send.empty()) {
      co_await wait_notifications_written();
      ++writes_to_client_;
      co_await client_.async_write(asio::buffer(chunk->send.data(), chunk->send.size()), ec);
      --writes_to_client_;
      if (ec) break;   // the client went away; its own direction notices too
      if (route_) route_->resend.clear();   // part of the reply reached the client: the read stays
      meter_.on_reply(chunk->send.size());
    }
    if (observed) exchange_->events.end_chunk(chunk->send);
    fwd.keep_held(buf);
    // Between transactions again: notifications that waited for it go now, as PostgreSQL's would.
    if (fwd.framer().at_boundary() && notifications_due()) {
      const bool written = co_await write_notifications();
      if (!written) break;
    }
    if (exchange_->retry.ready()) {
      const bool resent = co_await resend_stale_request(*server);
      if (!resent) break;
      continue;
    }
    if (transaction_block_in_statement_mode) {
      co_await send_error(fatal(sqlstate::kFeatureNotSupported,
                                "transaction blocks not allowed in statement pooling mode"));
      error_code ignored;
      client_.close(ignored);
      break;
    }
    if (exchange_->audit_settings && fwd.framer().at_boundary() && server->at_rest() && server->tx_status == 'I' &&
        !exchange_->request_pending) {
      const bool audited = co_await run_own_query(*server, audit_settings(*server));
      if (!audited) break;   // still owed: the settings a DO or CALL left are unknown (replace_lost_server)
      exchange_->audit_settings = false;
      // Bytes the audit read past its ReadyForQuery (a notice) come next.
      n = server->take_unread();
    }
    // (Not over bytes the audit read past its end: the fetch would read over them.)
    if (cache_observer_ && cache_observer_->wants_catalog() && n == 0 && fwd.framer().at_boundary() &&
        server->at_rest() && server->tx_status == 'I' && !exchange_->request_pending) {
      const bool fetched = co_await run_own_query(*server, fetch_cache_catalog(*server));
      if (!fetched) break;
      n = server->take_unread();
    }
    if (fwd.framer().at_boundary() && can_release_now()) {
      // Transaction over: the connection goes back to the pool, this pump ends (unless a
      // cancel is on its way to it: release_after_cancel() finishes the job then).
      if (give_back_server()) {
        done->notify();
        if (route_ && route_->drained) route_->drained->notify();
        co_return;
      }
    }
  }
  if (!fwd.framer().at_boundary()) server->broken = true;   // stopped inside a message
  end_retry();
  if (reroute) co_await read_again_on_primary(std::move(*reroute));   // starts the primary's pump
  done->notify();
  if (auto backlog = exchange_->backlog) backlog->notify();   // forward() reads the client again, or sees the end
  if (route_ && route_->drained) route_->drained->notify();
}

awaitable<bool> ClientSession::resend_stale_request(ServerConnection& server) {
  protocol::Buffer out;
  exchange_->retry.build(server.statements, server.replies, out);
  // DDL happened that pgrelay did not see: every other connection drops its shared statements
  // before its next use (attach_server), this one has just closed them.
  server.statements_generation = services_.schema_generation.fetch_add(1) + 1;
  ++server.in_flight;
  log_info("client ", id_, " ", peer_, ": a shared prepared statement was stale (DDL made elsewhere): prepared again");
  error_code ec;
  co_await server.transport().async_write(asio::buffer(out.data(), out.size()), ec);
  end_retry();
  if (!ec) co_return true;
  server.broken = true;
  co_await send_error(fatal(sqlstate::kConnectionFailure, "server connection lost"));
  client_.close(ec);
  co_return false;
}

void ClientSession::end_retry() {
  exchange_->retry.disarm();
  if (auto waiting = std::move(exchange_->retrying)) waiting->notify();
}

void ClientSession::requests_done(ServerConnection& server, int answered) {
  server.in_flight = std::max(0, server.in_flight - answered);
  if (exchange_->backlog && server.in_flight <= Exchange::kMaxRequestsInFlight / 2) exchange_->backlog->notify();
  if (server.in_flight > 0) return;
  if (route_ && route_->drained) route_->drained->notify();
  if (const auto& timer = timers_.peek().query) timer->cancel();
  arm_idle_timer();   // the client's turn again
}

bool ClientSession::give_back_server() {
  if (cancel_slot_ && !cancel_slot_->try_clear()) return false;
  // What it carries now is this client's view, including ParameterStatus changes it caused.
  note_server_carries_settings();
  server_stale_ = false;
  Pool& pool = server_pool();
  replica_detached();
  pool.release(std::move(server_));
  return true;
}

awaitable<void> ClientSession::release_between_transactions() {
  co_await stop_pump();
  // A newer pump may have started while this one was stopping (forward() attached a connection
  // for the client's next request): that pump gives the connection back at its ReadyForQuery.
  // Releasing under it would hand its socket to another client while it still reads it.
  if (pump_running()) co_return;
  if (can_release_now()) {
    (void)give_back_server();
    co_return;
  }
  // The client sent more while the pump was stopping (a release after a cancel races with the
  // client's next query): its answer needs a pump, unless the session is ending.
  if (server_ && !server_->broken && forwarding_ && !terminating_) start_pump(client_.get_executor());
}

void ClientSession::release_after_cancel() {
  if (!can_release_now()) return;
  auto self = shared_from_this();
  asio::co_spawn(client_.get_executor(), release_between_transactions(), [self](std::exception_ptr e) {
    log_exception(e, "client " + std::to_string(self->id_) + ": release after cancel failed");
  });
}

awaitable<bool> ClientSession::run_own_query(ServerConnection& server, awaitable<bool> query) {
  const auto ex = client_.get_executor();
  exchange_->own_query = std::make_shared<Event>(ex);
  // The client's next request waits for it: a server that does not answer in time is given up
  // (the query fails, the connection is closed), and the request takes another connection.
  StreamSocket& sock = server.socket();
  Watchdog patience(ex, kOwnQueryPatience, [&server, &sock] {
    server.broken = true;
    error_code ec;
    sock.close(ec);
  });
  const bool ok = co_await std::move(query);
  if (patience.fired())
    log_warning("client ", id_, " ", peer_, ": server connection ", server.target().describe(),
                " did not answer a query of pgrelay's own within ", kOwnQueryPatience.count(), " s: closed");
  if (auto own = std::move(exchange_->own_query)) own->notify();
  co_return ok && !patience.fired();
}

awaitable<void> ClientSession::stop_pump() {
  if (!pump_running()) co_return;
  // A query of pgrelay's own is short, and bounded (run_own_query): cut off, it would cost the connection.
  if (auto own = exchange_->own_query) co_await own->wait();
  exchange_->stop_pump = true;
  error_code ec;
  if (server_) server_->socket().cancel(ec);
  // Our own reference: a pump started while this one stops replaces exchange_->pump_done, and
  // the Event this wait is suspended in must outlive the wait.
  auto done = exchange_->pump_done;
  co_await done->wait_until(asio::steady_timer::clock_type::now() + std::chrono::seconds(5));
  if (!done->notified()) {
    // Stuck writing to a client that does not read: give up on both.
    client_.close(ec);
    if (server_) {
      server_->broken = true;
      server_->socket().close(ec);
    }
    co_await done->wait();
  }
}

awaitable<void> ClientSession::release_server() {
  if (!server_) {
    if (cancel_slot_) (void)cancel_slot_->try_clear();
    co_return;
  }
  note_server_carries_settings();
  if (pinned_out_) {
    pool_->pin_in();
    pinned_out_ = false;
  }
  // A cancel still on its way would hit whoever gets the connection next: close it instead.
  // So is one holding what DISCARD ALL cannot undo (a LOADed library).
  if ((cancel_slot_ && cancel_slot_->cancel_pending()) || session_state_->needs_close()) server_->broken = true;
  auto conn = std::move(server_);
  auto ex = co_await asio::this_coro::executor;
  StreamSocket& sock = conn->socket();
  Watchdog reset_timeout(ex, std::chrono::seconds(10), [&sock] { error_code ec; sock.close(ec); });
  if (conn->at_rest() && !terminating_) {
    // Leave nothing of this client's transaction behind; in session mode, nothing of its session.
    if (conn->tx_status != 'I') {
      if (auto r = co_await conn->run("ROLLBACK"); !r.ok()) conn->broken = true;
    }
    // A pinned client leaves its session state behind: nobody else may see it.
    const bool pinned_state = mode_ != conf::PoolMode::kSession && session_state_->pinned();
    const std::string reset = pinned_state ? std::string("DISCARD ALL") : pool_->settings().reset_query;
    if (!conn->broken && (mode_ == conf::PoolMode::kSession || pinned_state) && !reset.empty()) {
      if (auto r = co_await conn->run(reset); !r.ok()) {
        log_warning("pool ", pool_->name(), ": server_reset_query failed: ", r.error().message);
        conn->broken = true;
      } else {
        conn->applied_settings.clear();   // RESET ALL is part of DISCARD ALL
        conn->statements.clear();
        conn->carried_params.reset();
      }
    }
  } else {
    conn->broken = true;
  }
  Pool& pool = server_pool();
  replica_detached();
  pool.release(std::move(conn));
}

}  // namespace pgrelay::proxy
