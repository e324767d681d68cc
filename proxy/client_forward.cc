// A client's traffic: client->server in forward(), server->client in the pump, in every pool mode.
#include <algorithm>

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/session_util.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;
namespace be = protocol::backend;

constexpr size_t kClientBufferMin = 8 * 1024;
constexpr size_t kClientBufferMax = 64 * 1024;

// What one chunk of client bytes asks of the server connection.
struct ChunkScan {
  int requests = 0;                  // Query, FunctionCall, Sync: each gets one ReadyForQuery
  std::optional<bool> unsynced;      // extended-protocol state at the end of the chunk, if it changed
  std::optional<size_t> terminate_at;
  std::optional<protocol::ErrorSpec> violation;
};

}  // namespace

awaitable<void> ClientSession::forward() {
  auto ex = co_await asio::this_coro::executor;
  client_framer_ = protocol::Framer(config_->max_message_size);   // types and lengths only
  cbuf_.resize(kClientBufferMin);
  auto start_pump = [&] {
    stop_pump_ = false;
    pump_done_ = std::make_shared<Event>(ex);
    auto self = shared_from_this();
    asio::co_spawn(ex, pump(pump_done_), [self, done = pump_done_](std::exception_ptr e) {
      if (!e) return;
      try { std::rethrow_exception(e); } catch (const std::exception& ex) {
        log_error("client ", self->id_, ": server->client forwarding failed: ", ex.what());
      }
      done->notify();
    });
  };
  if (server_) start_pump();   // session mode: attached at login

  std::optional<protocol::ErrorSpec> violation;
  for (;;) {
    error_code ec;
    size_t n = co_await client_.async_read_some(asio::buffer(cbuf_), ec_awaitable(ec));
    if (ec) break;

    ChunkScan scan;
    auto consumed = client_framer_.feed(protocol::Bytes(cbuf_.data(), n), [&](const protocol::Frame& f, size_t end) {
      if (!is_frontend_type(f.type)) {
        scan.violation = fatal(sqlstate::kProtocolViolation,
                               "invalid frontend message type " + std::to_string(uint8_t(f.type)));
        return protocol::FrameAction::kStop;
      }
      switch (f.type) {
        case fe::kTerminate:
          scan.terminate_at = end - 5 - f.body_length;
          return protocol::FrameAction::kStop;
        case fe::kQuery: case fe::kFunctionCall: ++scan.requests; break;
        case fe::kSync: ++scan.requests; scan.unsynced = false; break;
        case fe::kParse: case fe::kBind: case fe::kDescribe: case fe::kExecute: case fe::kClose:
          scan.unsynced = true; break;
        default: break;
      }
      return protocol::FrameAction::kContinue;
    });
    if (!consumed.ok()) scan.violation = fatal(consumed.error().sqlstate, consumed.error().message);
    // A chunk with a bad message is not forwarded at all: bytes before it may end mid-message.
    size_t forward_bytes = scan.violation ? 0 : scan.terminate_at.value_or(n);

    if (forward_bytes > 0) {
      if (!server_) {
        if (!co_await attach_server()) break;
        start_pump();
      }
      server_->in_flight += scan.requests;
      if (scan.unsynced) server_->unsynced = *scan.unsynced;
      client_writing_ = true;
      co_await asio::async_write(server_->socket(), asio::buffer(cbuf_.data(), forward_bytes), ec_awaitable(ec));
      client_writing_ = false;
      if (ec) {
        server_->broken = true;
        break;
      }
      // The reply may have come back while we were writing; then the pump left the release to us.
      if (can_release_now()) {
        co_await stop_pump();
        if (can_release_now()) {
          cancel_slot_->clear();
          pool_->release(std::move(server_));
        }
      }
    }
    if (scan.violation) { violation = std::move(scan.violation); break; }
    if (scan.terminate_at) break;
    if (n == cbuf_.size() && cbuf_.size() < kClientBufferMax) cbuf_.resize(cbuf_.size() * 2);   // bulk input
  }
  if (server_ && !client_framer_.at_boundary()) server_->broken = true;   // the server got part of a message
  error_code ec;
  if (violation || terminating_) client_.cancel(ec);
  co_await stop_pump();
  if (violation) co_await send_error(*violation);
}

awaitable<bool> ClientSession::attach_server() {
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await pool_->acquire(ex, config_->query_wait_timeout);
  if (!conn.ok()) {
    co_await send_error(fatal(conn.error().sqlstate, conn.error().message));
    co_return false;
  }
  server_ = std::move(*conn);
  if (server_->last_client != id_) {
    // Another client (or none) used it last: make it carry this client's settings.
    std::string sql = sync_statements(wanted_settings(startup_settings_, client_params_), server_->parameters(),
                                      server_->applied_settings);
    if (!sql.empty()) {
      auto applied = co_await server_->run(sql);
      if (!applied.ok()) {
        server_->broken = true;   // what it carries now is unknown
        co_await send_error(fatal(applied.error().sqlstate, applied.error().message));
        co_return false;
      }
      // The server reports the values in its own spelling ("UTF8" for "utf8"); keep that, so
      // the next attach compares like with like.
      for (auto& [name, value] : client_params_) {
        auto it = server_->parameters().find(name);
        if (it != server_->parameters().end()) value = it->second;
      }
    }
    server_->last_client = id_;
  }
  cancel_slot_->set(server_->target(), server_->backend_key());
  co_return true;
}

bool ClientSession::can_release_now() const {
  return mode_ != conf::PoolMode::kSession && server_ && !terminating_ && server_->at_rest() &&
         server_->tx_status == 'I' && !client_writing_ && client_framer_.at_boundary() &&
         server_->read_begin() == server_->read_end();
}

awaitable<void> ClientSession::pump(std::shared_ptr<Event> done) {
  auto self = shared_from_this();
  ServerConnection* server = server_.get();
  protocol::Framer framer(config_->max_message_size);
  framer.inspect(be::kReadyForQuery);
  framer.inspect(be::kParameterStatus);
  framer.inspect(be::kErrorResponse);
  protocol::Buffer& buf = server->read_buffer();
  size_t& begin = server->read_begin();
  size_t& end = server->read_end();
  bool transaction_block_in_statement_mode = false;
  while (!stop_pump_) {
    error_code ec;
    if (begin == end) {
      size_t n = co_await server->socket().async_read_some(asio::buffer(buf), ec_awaitable(ec));
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
      begin = 0;
      end = n;
    }
    auto consumed = framer.feed(protocol::Bytes(buf.data() + begin, end - begin), [&](const protocol::Frame& f, size_t) {
      switch (f.type) {
        case be::kReadyForQuery:
          if (!f.body.empty()) server->tx_status = char(f.body[0]);
          if (server->in_flight > 0) --server->in_flight;
          if (mode_ == conf::PoolMode::kStatement && server->tx_status != 'I' && server->in_flight == 0)
            transaction_block_in_statement_mode = true;
          break;
        case be::kParameterStatus:
          if (auto ps = protocol::decode_parameter_status(f.body); ps.ok()) {
            server->set_parameter(ps->name, ps->value);
            client_params_[std::string(ps->name)] = std::string(ps->value);
          }
          break;
        case be::kErrorResponse:
          if (auto e = protocol::decode_error_notice(f.body); e.ok() && e->is_fatal()) server_fatal_ = true;
          break;
      }
      return protocol::FrameAction::kContinue;
    });
    if (!consumed.ok()) {
      log_error("client ", id_, ": invalid data from server ", server->target().describe(), ": ", consumed.error().message);
      server->broken = true;
      error_code ignored;
      client_.close(ignored);
      break;
    }
    co_await asio::async_write(client_, asio::buffer(buf.data() + begin, end - begin), ec_awaitable(ec));
    begin = end;
    if (ec) break;   // the client went away; its own direction notices too
    if (transaction_block_in_statement_mode) {
      co_await send_error(fatal(sqlstate::kFeatureNotSupported,
                                "transaction blocks not allowed in statement pooling mode"));
      error_code ignored;
      client_.close(ignored);
      break;
    }
    if (can_release_now() && framer.at_boundary()) {
      // Transaction over: the connection goes back to the pool, this pump ends.
      cancel_slot_->clear();
      pool_->release(std::move(server_));
      done->notify();
      co_return;
    }
  }
  if (!framer.at_boundary()) server->broken = true;   // stopped inside a message
  done->notify();
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
  cancel_slot_->clear();
  if (!server_) co_return;
  auto conn = std::move(server_);
  auto ex = co_await asio::this_coro::executor;
  StreamSocket& sock = conn->socket();
  Watchdog reset_timeout(ex, std::chrono::seconds(10), [&sock] { error_code ec; sock.close(ec); });
  if (conn->at_rest() && !terminating_) {
    // Leave nothing of this client's transaction behind; in session mode, nothing of its session.
    if (conn->tx_status != 'I') {
      if (auto r = co_await conn->run("ROLLBACK"); !r.ok()) conn->broken = true;
    }
    const std::string& reset = pool_->settings().reset_query;
    if (!conn->broken && mode_ == conf::PoolMode::kSession && !reset.empty()) {
      if (auto r = co_await conn->run(reset); !r.ok()) {
        log_warning("pool ", pool_->name(), ": server_reset_query failed: ", r.error().message);
        conn->broken = true;
      } else {
        conn->applied_settings.clear();   // RESET ALL is part of DISCARD ALL
        conn->last_client = 0;
      }
    }
  } else {
    conn->broken = true;
  }
  pool_->release(std::move(conn));
}

}  // namespace pgrelay::proxy
