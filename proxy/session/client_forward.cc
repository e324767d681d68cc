// A client's traffic: client->server in forward(), server->client in the pump, in every pool mode.
#include <algorithm>
#include <array>

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/session/acquire.h"
#include "proxy/base/buffer_pool.h"
#include "proxy/session/client_session.h"
#include "proxy/base/log.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;
namespace be = protocol::backend;

constexpr std::byte kParseComplete[] = {std::byte('1'), std::byte(0), std::byte(0), std::byte(0), std::byte(4)};

// What one chunk of client bytes asks of the server connection.
struct ChunkScan {
  int requests = 0;                  // Query, FunctionCall, Sync: each gets one ReadyForQuery
  std::optional<bool> unsynced;      // extended-protocol state at the end of the chunk, if it changed
  bool terminate = false;
  std::optional<protocol::ErrorSpec> violation;
};

bool is_statement_reset(std::string_view tag) { return tag == "DISCARD ALL" || tag == "DEALLOCATE ALL"; }

}  // namespace

awaitable<void> ClientSession::forward() {
  auto ex = co_await asio::this_coro::executor;
  client_fwd_ = MessageForwarder(config_->max_message_size);
  routing_ = mode_ != conf::PoolMode::kSession && config_->max_prepared_statements > 0;
  if (routing_) {
    // Statement names live in these; they must arrive whole to be rewritten.
    for (char t : {fe::kParse, fe::kBind, fe::kDescribe, fe::kClose}) client_fwd_.framer().inspect(t);
  }
  // Statement texts are read for session state when connections are shared, and in session
  // mode when a RESET must go back to the client's startup values.
  screening_ = mode_ != conf::PoolMode::kSession || !startup_settings_.empty();
  if (screening_)
    for (char t : {fe::kQuery, fe::kParse}) client_fwd_.framer().inspect(t);
  auto start_pump = [&] {
    stop_pump_ = false;
    pump_done_ = std::make_shared<Event>(ex);
    auto self = shared_from_this();
    asio::co_spawn(ex, pump(pump_done_), [self, done = pump_done_](std::exception_ptr e) {
      if (!e) return;
      log_exception(e, "client " + std::to_string(self->id_) + ": server->client forwarding failed");
      done->notify();
    });
  };
  if (server_) start_pump();   // session mode: attached at login

  std::optional<protocol::ErrorSpec> violation;
  std::array<std::byte, 4> held_header{};   // an incomplete header between reads (MessageForwarder::held)
  error_code ec;
  client_.socket().non_blocking(true, ec);
  bool more_ready = false;                   // the last read filled the buffer: read again at once
  for (;;) {
    // Wait for bytes before taking a buffer: an idle client holds none.
    if (!more_ready) {
      if (!server_ || server_->in_flight == 0) arm_idle_timer();   // the client's turn
      co_await client_.wait_readable(ec);   // at once when TLS already holds bytes
      disarm_idle_timer();
      if (idle_error_) {
        violation = std::move(idle_error_);
        break;
      }
      if (ec) break;
    }
    PooledBuffer pooled;
    std::span<std::byte> buf(pooled.get());
    size_t held = client_fwd_.held();
    std::copy_n(held_header.begin(), held, buf.begin());
    size_t n = client_.read_some(asio::buffer(buf.data() + held, buf.size() - held), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      more_ready = false;
      continue;
    }
    if (ec) break;
    more_ready = n == buf.size() - held;

    // A server first (unless all the client says is goodbye): routing needs to know what it
    // has. Session mode is attached from login to the end.
    bool only_terminate = held == 0 && n == 5 && buf[0] == std::byte(fe::kTerminate);
    if (!server_ && !only_terminate && mode_ != conf::PoolMode::kSession) {
      if (!co_await attach_server()) break;
    }
    // A RESET took the attached server back to its defaults: the client's settings first.
    if (server_ && server_stale_ && server_->in_flight == 0 && !server_->broken) {
      const bool resynced = co_await resync_server();
      if (!resynced) break;
    }
    // A new attachment, or a release a pending cancel refused after the pump had stopped.
    if (server_ && !server_->broken && (!pump_done_ || pump_done_->notified())) start_pump();

    ChunkScan scan;
    auto chunk = client_fwd_.process(buf, n, [&](const protocol::Frame& f, protocol::Buffer& replacement) {
      if (!is_frontend_type(f.type)) {
        scan.violation = fatal(sqlstate::kProtocolViolation,
                               "invalid frontend message type " + std::to_string(uint8_t(f.type)));
        return Verdict::kStop;
      }
      switch (f.type) {
        case fe::kTerminate: scan.terminate = true; return Verdict::kStop;
        case fe::kQuery: case fe::kFunctionCall: ++scan.requests; break;
        case fe::kSync: ++scan.requests; scan.unsynced = false; break;
        case fe::kParse: case fe::kBind: case fe::kDescribe: case fe::kExecute: case fe::kClose:
          scan.unsynced = true; break;
        default: break;
      }
      if (screening_ && server_ && f.inspected && (f.type == fe::kQuery || f.type == fe::kParse) &&
          screen_statement(f.type, f.body, replacement))
        return Verdict::kReplace;
      if (routing_ && server_ &&
          router_.route(f.type, f.body, server_->statements, server_->replies, replacement))
        return Verdict::kReplace;
      return Verdict::kPass;
    });
    if (!chunk.ok()) scan.violation = fatal(chunk.error().sqlstate, chunk.error().message);
    if (scan.violation) {
      // None of this chunk goes on, but an earlier chunk may have carried the start of the bad
      // message: the server connection's stream cannot be trusted any more.
      if (server_) server_->broken = true;
      violation = std::move(scan.violation);
      break;
    }

    if (!chunk->send.empty()) {
      if (server_->in_flight == 0 && scan.requests > 0) arm_query_timeout();
      server_->in_flight += scan.requests;
      if (scan.unsynced) server_->unsynced = *scan.unsynced;
      client_writing_ = true;
      co_await server_->transport().async_write(asio::buffer(chunk->send.data(), chunk->send.size()), ec);
      client_writing_ = false;
      if (ec) {
        server_->broken = true;
        break;
      }
      meter_.on_request(chunk->send.size(), scan.requests);
      // The reply may have come back while we were writing; then the pump left the release to us.
      if (can_release_now()) co_await release_between_transactions();
    }
    if (scan.terminate) break;
    client_fwd_.keep_held(buf);
    std::copy_n(buf.begin(), client_fwd_.held(), held_header.begin());
  }
  if (server_ && !client_fwd_.framer().at_boundary()) server_->broken = true;   // the server got part of a message
  if (violation || terminating_) client_.cancel(ec);
  co_await stop_pump();
  if (violation) co_await send_error(*violation);
}

awaitable<bool> ClientSession::attach_server() {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await acquire_server(services_, *pool_, meter_, ex, config_->query_wait_timeout);
  if (!conn.ok()) {
    co_await send_error(fatal(conn.error().sqlstate, conn.error().message));
    co_return false;
  }
  server_ = std::move(*conn);
  if (!client_params_ || server_->carried_params != client_params_ ||
      server_->carried_sets != session_state_.sets()) {
    // Another client (or none) used it last: make it carry this client's settings.
    // At login there is no client view yet: the startup settings are all it wants.
    std::string sql = settings_sync_sql();
    if (!sql.empty()) {
      auto applied = co_await server_->run(sql);
      if (!applied.ok()) {
        server_->broken = true;   // what it carries now is unknown
        co_await send_error(fatal(applied.error().sqlstate, applied.error().message));
        co_return false;
      }
      // The server reports the values in its own spelling ("UTF8" for "utf8"); keep that, so
      // the next attach compares like with like.
      if (client_params_)
        for (const auto& [name, value] : server_->parameters())
          if (client_params_->count(name)) set_client_param(name, value);
    }
    note_server_carries_settings();
  }
  cancel_slot_->set(server_->target(), server_->backend_key());
  co_return true;
}

awaitable<bool> ClientSession::resync_server() {
  co_await stop_pump();
  std::string sql = settings_sync_sql();
  server_stale_ = false;
  if (sql.empty()) co_return true;
  auto applied = co_await server_->run(sql);
  if (!applied.ok()) {
    server_->broken = true;
    co_await send_error(fatal(applied.error().sqlstate, "restoring the session's settings after RESET failed: " +
                                                            applied.error().message));
    co_return false;
  }
  note_server_carries_settings();
  co_return true;
}

std::string ClientSession::settings_sync_sql() {
  static const ParamMap kNone;   // at login there is no client view yet
  return sync_statements(
      wanted_settings(startup_settings_, client_params_ ? *client_params_ : kNone, session_state_.sets().get()),
      server_->parameters(), server_->applied_settings);
}

void ClientSession::note_server_carries_settings() {
  // A RESET left it at server defaults the client does not want: it carries nobody's view.
  server_->carried_params = server_stale_ ? nullptr : client_params_;
  server_->carried_sets = session_state_.sets();
}

bool ClientSession::can_release_now() const {
  return mode_ != conf::PoolMode::kSession && server_ && !terminating_ && server_->at_rest() &&
         server_->tx_status == 'I' && !client_writing_ && client_fwd_.framer().at_boundary() &&
         !session_state_.pinned();
}

awaitable<void> ClientSession::pump(std::shared_ptr<Event> done) {
  auto self = shared_from_this();
  ServerConnection* server = server_.get();
  MessageForwarder fwd(config_->max_message_size);
  for (char t : {be::kReadyForQuery, be::kParameterStatus, be::kErrorResponse, be::kCommandComplete,
                 be::kParseComplete, be::kCloseComplete})
    fwd.framer().inspect(t);
  std::span<std::byte> buf(server->read_buffer());
  // Bytes login/run() read past their last message come first.
  size_t n = server->read_end() - server->read_begin();
  if (n > 0) std::memmove(buf.data(), buf.data() + server->read_begin(), n);
  server->read_begin() = server->read_end() = 0;
  bool transaction_block_in_statement_mode = false;
  while (!stop_pump_) {
    error_code ec;
    if (n == 0) {
      size_t held = fwd.held();
      n = co_await server->transport().async_read_some(asio::buffer(buf.data() + held, buf.size() - held), ec);
      if (ec) {
        if (ec != asio::error::operation_aborted) {
          server->broken = true;
          if (!server_fatal_ && !terminating_) {
            log_warning("client ", id_, " ", peer_, ": server connection ", server->target().describe(),
                        " lost: ", ec.message());
            co_await send_error(fatal(sqlstate::kConnectionFailure, "server connection lost"));
          }
          error_code ignored;
          client_.close(ignored);   // ends the client->server direction too
        }
        break;
      }
    }
    auto chunk = fwd.process(buf, n, [&](const protocol::Frame& f, protocol::Buffer& replacement) {
      protocol::Buffer ours;   // pgrelay's message(s) in place of this one, when it is forwarded
      switch (f.type) {
        case be::kReadyForQuery:
          if (!f.body.empty()) server->tx_status = char(f.body[0]);
          meter_.on_ready_for_query(server->tx_status);
          if (screening_) settle_session_state(server->tx_status, f.body, ours);
          if (server->in_flight > 0) --server->in_flight;
          if (server->in_flight == 0) {
            if (query_timer_) query_timer_->cancel();
            arm_idle_timer();   // the client's turn again
          }
          if (mode_ == conf::PoolMode::kStatement && server->tx_status != 'I' && server->in_flight == 0)
            transaction_block_in_statement_mode = true;
          break;
        case be::kParameterStatus:
          if (auto ps = server->note_parameter_status(f.body))
            set_client_param(ps->name, ps->value);
          break;
        case be::kErrorResponse:
          if (auto e = protocol::decode_error_notice(f.body); e.ok() && e->is_fatal()) server_fatal_ = true;
          if (screening_) {
            session_state_.on_error();
            if (!rejections_.empty()) (void)rejected_error(f.body, ours);
          }
          break;
        case be::kCommandComplete:
          if (auto cc = protocol::decode_command_complete(f.body); cc.ok() && is_statement_reset(cc->tag)) {
            // The client dropped every prepared statement of the connection, ours included.
            server->statements.clear();
            router_.forget_all();
          }
          break;
      }
      switch (server->replies.on_reply(f.type, server->statements)) {
        case ReplyAction::kForward:
          if (ours.empty()) return Verdict::kPass;
          replacement = std::move(ours);
          return Verdict::kReplace;
        case ReplyAction::kDrop: return Verdict::kReplace;
        case ReplyAction::kAsParseComplete:
          replacement.assign(std::begin(kParseComplete), std::end(kParseComplete));
          return Verdict::kReplace;
      }
      return Verdict::kPass;
    });
    n = 0;
    if (!chunk.ok()) {
      log_error("client ", id_, ": invalid data from server ", server->target().describe(), ": ", chunk.error().message);
      server->broken = true;
      error_code ignored;
      client_.close(ignored);
      break;
    }
    if (!chunk->send.empty()) {
      co_await client_.async_write(asio::buffer(chunk->send.data(), chunk->send.size()), ec);
      if (ec) break;   // the client went away; its own direction notices too
      meter_.on_reply(chunk->send.size());
    }
    fwd.keep_held(buf);
    if (transaction_block_in_statement_mode) {
      co_await send_error(fatal(sqlstate::kFeatureNotSupported,
                                "transaction blocks not allowed in statement pooling mode"));
      error_code ignored;
      client_.close(ignored);
      break;
    }
    if (fwd.framer().at_boundary() && can_release_now()) {
      // Transaction over: the connection goes back to the pool, this pump ends (unless a
      // cancel is on its way to it: release_after_cancel() finishes the job then).
      if (give_back_server()) {
        done->notify();
        co_return;
      }
    }
  }
  if (!fwd.framer().at_boundary()) server->broken = true;   // stopped inside a message
  done->notify();
}

void ClientSession::arm_idle_timer() {
  const bool in_transaction = server_ && server_->tx_status != 'I';
  const conf::Duration limit = in_transaction ? config_->idle_transaction_timeout : config_->client_idle_timeout;
  if (limit.count() <= 0) return;
  if (!idle_timer_) idle_timer_.emplace(client_.get_executor());
  const uint64_t generation = ++idle_generation_;
  idle_timer_->expires_after(limit);
  std::weak_ptr<ClientSession> weak = shared_from_this();
  idle_timer_->async_wait([weak, generation, in_transaction, limit](const error_code& ec) {
    auto self = weak.lock();
    // A newer arm or a disarm since: the client spoke in time.
    if (ec || !self || self->idle_generation_ != generation) return;
    self->idle_error_ = in_transaction
        ? fatal(sqlstate::kIdleInTransactionTimeout, "idle_transaction_timeout: transaction left idle for " +
                                                         std::to_string(limit.count()) + " ms, rolled back")
        : fatal(sqlstate::kProtocolViolation, "client_idle_timeout: no query for " + std::to_string(limit.count()) + " ms");
    error_code ignored;
    self->client_.cancel(ignored);   // ends the client's wait; forward() sends the error
  });
}

void ClientSession::disarm_idle_timer() {
  ++idle_generation_;
  if (idle_timer_) idle_timer_->cancel();
}

void ClientSession::arm_query_timeout() {
  if (config_->query_timeout.count() <= 0) return;
  if (!query_timer_) query_timer_.emplace(client_.get_executor());
  query_timer_->expires_after(config_->query_timeout);
  std::weak_ptr<ClientSession> weak = shared_from_this();
  query_timer_->async_wait([weak](const error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || !self->server_ || self->server_->in_flight == 0) return;
    // Like a client's own CancelRequest: the connection stays with this client until delivered.
    auto target = self->cancel_slot_->begin_cancel();
    if (!target) return;
    log_info("client ", self->id_, " ", self->peer_, ": query_timeout (", self->config_->query_timeout.count(),
             " ms), cancelling its query");
    auto ex = self->client_.get_executor();
    asio::co_spawn(ex, [self, target = *target, ex]() -> awaitable<void> {
      co_await send_cancel_request(ex, target.server, target.key);
      self->cancel_slot_->end_cancel();
    }, [self](std::exception_ptr e) {
      log_exception(e, "client " + std::to_string(self->id_) + ": query_timeout cancel failed");
    });
  });
}

bool ClientSession::give_back_server() {
  if (!cancel_slot_->try_clear()) return false;
  // What it carries now is this client's view, including ParameterStatus changes it caused.
  note_server_carries_settings();
  server_stale_ = false;
  pool_->release(std::move(server_));
  return true;
}

awaitable<void> ClientSession::release_between_transactions() {
  co_await stop_pump();
  if (can_release_now()) (void)give_back_server();
}

void ClientSession::release_after_cancel() {
  if (!can_release_now()) return;
  auto self = shared_from_this();
  asio::co_spawn(client_.get_executor(), release_between_transactions(), [self](std::exception_ptr e) {
    log_exception(e, "client " + std::to_string(self->id_) + ": release after cancel failed");
  });
}

awaitable<void> ClientSession::stop_pump() {
  if (!pump_done_ || pump_done_->notified()) co_return;
  stop_pump_ = true;
  error_code ec;
  if (server_) server_->socket().cancel(ec);
  co_await pump_done_->wait_until(asio::steady_timer::clock_type::now() + std::chrono::seconds(5));
  if (!pump_done_->notified()) {
    // Stuck writing to a client that does not read: give up on both.
    client_.close(ec);
    if (server_) {
      server_->broken = true;
      server_->socket().close(ec);
    }
    co_await pump_done_->wait();
  }
}

awaitable<void> ClientSession::release_server() {
  if (!server_) {
    (void)cancel_slot_->try_clear();
    co_return;
  }
  note_server_carries_settings();
  if (pinned_out_) {
    pool_->pin_in();
    pinned_out_ = false;
  }
  // A cancel still on its way would hit whoever gets the connection next: close it instead.
  // So is one holding what DISCARD ALL cannot undo (a LOADed library).
  if (cancel_slot_->cancel_pending() || session_state_.needs_close()) server_->broken = true;
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
    const bool pinned_state = mode_ != conf::PoolMode::kSession && session_state_.pinned();
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
  pool_->release(std::move(conn));
}

}  // namespace pgrelay::proxy
