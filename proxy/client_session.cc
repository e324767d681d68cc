// Handling of one client connection: startup, login, session-mode forwarding, release.
#include "proxy/client_session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/log.h"
#include "proxy/startup_params.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;
namespace be = protocol::backend;

constexpr size_t kClientBufferMin = 8 * 1024;
constexpr size_t kClientBufferMax = 64 * 1024;
constexpr int kMaxNegotiations = 2;   // SSLRequest then GSSENCRequest (or the reverse)

bool is_frontend_type(char t) {
  switch (t) {
    case fe::kQuery: case fe::kParse: case fe::kBind: case fe::kDescribe: case fe::kExecute:
    case fe::kSync: case fe::kFlush: case fe::kClose: case fe::kTerminate: case fe::kCopyData:
    case fe::kCopyDone: case fe::kCopyFail: case fe::kFunctionCall:
      return true;
    default:
      return false;
  }
}

protocol::ErrorSpec fatal(std::string sqlstate, std::string message) {
  return {"FATAL", std::move(sqlstate), std::move(message), "", ""};
}

}  // namespace

ClientSession::ClientSession(tcp::socket socket, Services& services)
    : client_(std::move(socket)), services_(services), config_(services.config.get()),
      id_(services.next_client_id.fetch_add(1)) {
  error_code ec;
  auto ep = client_.remote_endpoint(ec);
  peer_ = ec ? "unknown" : ep.address().to_string() + ":" + std::to_string(ep.port());
  client_.set_option(tcp::no_delay(true), ec);
  services_.clients.fetch_add(1);
  counted_ = true;
}

ClientSession::~ClientSession() {
  if (counted_) services_.clients.fetch_sub(1);
  if (key_) services_.cancels.unregister(*key_);
}

void ClientSession::terminate() {
  terminating_ = true;
  error_code ec;
  client_.close(ec);
  if (server_) server_->socket().cancel(ec);
}

awaitable<bool> ClientSession::write_client(protocol::Bytes bytes) {
  error_code ec;
  co_await asio::async_write(client_, asio::buffer(bytes.data(), bytes.size()), ec_awaitable(ec));
  co_return !ec;
}

awaitable<void> ClientSession::send_error(const protocol::ErrorSpec& e) {
  if (e.severity == "FATAL") log_info("client ", id_, " ", peer_, ": ", e.sqlstate, " ", e.message);
  protocol::Buffer out;
  protocol::encode_error_response(e, out);
  auto ex = co_await asio::this_coro::executor;
  // A client that does not read must not hold the session open: give up after a while.
  Watchdog wd(ex, std::chrono::seconds(5), [this] { error_code ec; client_.close(ec); });
  co_await write_client(out);
}

awaitable<void> ClientSession::run() {
  auto self = shared_from_this();
  auto ex = co_await asio::this_coro::executor;
  log_debug("client ", id_, " connected from ", peer_);

  std::optional<protocol::StartupMessage> startup;
  {
    // client_login_timeout: a client that connects and says nothing is told why, then closed.
    Watchdog login_timer(ex, config_->client_login_timeout, [this] {
      log_info("client ", id_, " ", peer_, ": client_login_timeout, closing");
      protocol::Buffer out;
      protocol::encode_error_response(
          fatal(sqlstate::kProtocolViolation, "client_login_timeout: no startup packet received in time"), out);
      ssize_t rc = ::send(client_.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      (void)rc;
      error_code ec;
      client_.close(ec);
    });
    startup = co_await read_startup();
  }
  if (startup && co_await login(*startup)) {
    co_await forward();
  }
  co_await release_server();
  error_code ec;
  client_.shutdown(tcp::socket::shutdown_both, ec);
  client_.close(ec);
  log_debug("client ", id_, " ", peer_, " disconnected");
}

awaitable<std::optional<protocol::StartupMessage>> ClientSession::read_startup() {
  protocol::Buffer packet;
  for (int round = 0;; ++round) {
    error_code ec;
    std::byte head[4];
    co_await asio::async_read(client_, asio::buffer(head), ec_awaitable(ec));
    if (ec) co_return std::nullopt;   // gone (or login timeout): nothing more to say
    auto length = protocol::startup_packet_length(protocol::Bytes(head, 4), config_->max_startup_packet_size);
    if (!length.ok()) {
      co_await send_error(fatal(length.error().sqlstate, length.error().message));
      co_return std::nullopt;
    }
    packet.assign(head, head + 4);
    packet.resize(*length);
    co_await asio::async_read(client_, asio::buffer(packet.data() + 4, *length - 4), ec_awaitable(ec));
    if (ec) co_return std::nullopt;
    auto decoded = protocol::decode_startup_packet(packet);
    if (!decoded.ok()) {
      co_await send_error(fatal(decoded.error().sqlstate, decoded.error().message));
      co_return std::nullopt;
    }
    if (std::holds_alternative<protocol::StartupMessage>(*decoded)) {
      co_return std::get<protocol::StartupMessage>(std::move(*decoded));
    }
    if (auto* cancel = std::get_if<protocol::CancelRequest>(&*decoded)) {
      co_await serve_cancel(*cancel);
      co_return std::nullopt;
    }
    // SSLRequest or GSSENCRequest: not supported yet, the client goes on in plain text.
    if (round >= kMaxNegotiations) {
      co_await send_error(fatal(sqlstate::kProtocolViolation, "too many SSL/GSSAPI encryption requests"));
      co_return std::nullopt;
    }
    static constexpr std::byte kNo[1] = {std::byte('N')};
    if (!co_await write_client(kNo)) co_return std::nullopt;
  }
}

awaitable<void> ClientSession::serve_cancel(const protocol::CancelRequest& req) {
  auto slot = services_.cancels.find({req.pid, req.secret});
  auto target = slot ? slot->get() : std::nullopt;
  if (!target) {
    log_debug("cancel request from ", peer_, " for an unknown or idle client");
    co_return;
  }
  log_info("client ", id_, " ", peer_, ": forwarding cancel request to ", target->server.describe());
  co_await send_cancel_request(co_await asio::this_coro::executor, target->server, target->key);
}

awaitable<bool> ClientSession::login(const protocol::StartupMessage& startup) {
  user_ = *startup.get("user");
  const std::string* db = startup.get("database");
  database_ = (db && !db->empty()) ? *db : user_;

  if (startup.get("replication")) {
    co_await send_error(fatal(sqlstate::kFeatureNotSupported, "replication connections are not supported by pgrelay"));
    co_return false;
  }
  if (services_.clients.load() > config_->max_client_conn) {
    co_await send_error(fatal(sqlstate::kTooManyConnections, "no more connections allowed (max_client_conn)"));
    co_return false;
  }
  const conf::DatabaseEntry* entry = config_->find_database(database_);
  if (!entry) {
    co_await send_error(fatal(sqlstate::kInvalidCatalogName, "no such database: " + database_));
    co_return false;
  }
  auto settings = startup_settings(startup);
  if (!settings.ok()) {
    co_await send_error(fatal(settings.error().sqlstate, settings.error().message));
    co_return false;
  }

  protocol::Buffer out;
  // A newer minor protocol version or _pq_ extensions: say what we speak (3.0, none of them).
  protocol::NegotiateProtocolVersion negotiate;
  for (const auto& [name, value] : startup.params)
    if (name.rfind("_pq_.", 0) == 0) negotiate.unrecognized.push_back(name);
  if (startup.minor > 0 || !negotiate.unrecognized.empty()) protocol::encode(negotiate, out);

  const std::string& server_user = entry->user.empty() ? user_ : entry->user;
  pool_ = services_.pools.pool_for(*config_, *entry, database_, server_user);
  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await pool_->acquire(ex, config_->query_wait_timeout);
  if (!conn.ok()) {
    co_await send_error(fatal(conn.error().sqlstate, conn.error().message));
    co_return false;
  }
  server_ = std::move(*conn);
  std::string sets = set_statements(*settings, server_->parameters());
  if (!sets.empty()) {
    auto applied = co_await server_->run(sets);
    if (!applied.ok()) {
      co_await send_error(fatal(applied.error().sqlstate, applied.error().message));
      co_return false;
    }
  }

  protocol::encode(protocol::Authentication{protocol::AuthType::kOk}, out);
  for (const auto& [name, value] : server_->parameters()) protocol::encode(protocol::ParameterStatus{name, value}, out);
  key_ = services_.cancels.register_client(cancel_slot_);
  protocol::encode(*key_, out);
  protocol::encode(protocol::ReadyForQuery{server_->tx_status}, out);
  cancel_slot_->set(server_->target(), server_->backend_key());
  log_debug("client ", id_, " ", peer_, " logged in to ", database_, " as ", user_);
  co_return co_await write_client(out);
}

awaitable<void> ClientSession::forward() {
  auto ex = co_await asio::this_coro::executor;
  auto server_done = std::make_shared<Event>(ex);
  auto self = shared_from_this();
  asio::co_spawn(ex, server_to_client(server_done), [self, server_done](std::exception_ptr e) {
    if (e) {
      try { std::rethrow_exception(e); } catch (const std::exception& ex) {
        log_error("client ", self->id_, ": server->client forwarding failed: ", ex.what());
      }
      server_done->notify();
    }
  });

  protocol::Framer framer(config_->max_message_size);   // types and lengths only: nothing inspected
  cbuf_.resize(kClientBufferMin);
  std::optional<protocol::ErrorSpec> violation;
  bool client_done = false;
  size_t terminate_at = 0;
  while (!client_done && !violation && !server_done->notified()) {
    error_code ec;
    size_t n = co_await client_.async_read_some(asio::buffer(cbuf_), ec_awaitable(ec));
    if (ec) break;
    ServerConnection& server = *server_;
    auto consumed = framer.feed(protocol::Bytes(cbuf_.data(), n), [&](const protocol::Frame& f, size_t end) {
      if (!is_frontend_type(f.type)) {
        violation = fatal(sqlstate::kProtocolViolation,
                          "invalid frontend message type " + std::to_string(uint8_t(f.type)));
        return protocol::FrameAction::kStop;
      }
      switch (f.type) {
        case fe::kTerminate:
          client_done = true;
          terminate_at = end - 5 - f.body_length;
          return protocol::FrameAction::kStop;
        case fe::kQuery: case fe::kFunctionCall: ++server.in_flight; break;
        case fe::kSync: ++server.in_flight; server.unsynced = false; break;
        case fe::kParse: case fe::kBind: case fe::kDescribe: case fe::kExecute: case fe::kClose:
          server.unsynced = true; break;
        default: break;
      }
      return protocol::FrameAction::kContinue;
    });
    size_t forward_bytes = n;
    if (!consumed.ok()) {
      violation = fatal(consumed.error().sqlstate, consumed.error().message);
      forward_bytes = 0;
    } else if (violation) {
      forward_bytes = 0;   // bytes before a bad message may be cut mid-way: send none of the chunk
    } else if (client_done) {
      forward_bytes = terminate_at;   // everything before the Terminate
    }
    if (forward_bytes > 0) {
      co_await asio::async_write(server.socket(), asio::buffer(cbuf_.data(), forward_bytes), ec_awaitable(ec));
      if (ec) { server.broken = true; break; }
    }
    if (n == cbuf_.size() && cbuf_.size() < kClientBufferMax) cbuf_.resize(cbuf_.size() * 2);   // bulk input: read more per call
  }
  if (violation && !framer.at_boundary()) server_->broken = true;

  // Stop the other direction: it may be waiting on the server or on a slow client.
  stop_pump_ = true;
  error_code ec;
  server_->socket().cancel(ec);
  if (violation || client_done || terminating_) client_.cancel(ec);
  co_await server_done->wait_until(asio::steady_timer::clock_type::now() + std::chrono::seconds(5));
  if (!server_done->notified()) {
    server_->broken = true;
    client_.close(ec);
    server_->socket().close(ec);
    co_await server_done->wait();
  }
  if (violation) co_await send_error(*violation);
}

awaitable<void> ClientSession::server_to_client(std::shared_ptr<Event> done) {
  auto self = shared_from_this();
  ServerConnection& server = *server_;
  protocol::Framer framer(config_->max_message_size);
  framer.inspect(be::kReadyForQuery);
  framer.inspect(be::kParameterStatus);
  framer.inspect(be::kErrorResponse);
  protocol::Buffer& buf = server.read_buffer();
  size_t& begin = server.read_begin();
  size_t& end = server.read_end();
  while (!stop_pump_) {
    error_code ec;
    if (begin == end) {
      size_t n = co_await server.socket().async_read_some(asio::buffer(buf), ec_awaitable(ec));
      if (ec) {
        if (ec != asio::error::operation_aborted) {
          server.broken = true;
          if (!server_fatal_ && !terminating_) {
            log_warning("client ", id_, " ", peer_, ": server connection ", server.target().describe(), " lost: ", ec.message());
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
          if (!f.body.empty()) server.tx_status = char(f.body[0]);
          if (server.in_flight > 0) --server.in_flight;
          break;
        case be::kParameterStatus:
          if (auto ps = protocol::decode_parameter_status(f.body); ps.ok()) server.set_parameter(ps->name, ps->value);
          break;
        case be::kErrorResponse:
          if (auto e = protocol::decode_error_notice(f.body); e.ok() && e->is_fatal()) server_fatal_ = true;
          break;
      }
      return protocol::FrameAction::kContinue;
    });
    if (!consumed.ok()) {
      log_error("client ", id_, ": invalid data from server ", server.target().describe(), ": ", consumed.error().message);
      server.broken = true;
      error_code ignored;
      client_.close(ignored);
      break;
    }
    co_await asio::async_write(client_, asio::buffer(buf.data() + begin, end - begin), ec_awaitable(ec));
    begin = end;
    if (ec) break;   // the client went away; its own direction notices too
  }
  if (!framer.at_boundary()) server.broken = true;   // stopped inside a message
  done->notify();
}

awaitable<void> ClientSession::release_server() {
  cancel_slot_->clear();
  if (!server_) co_return;
  auto conn = std::move(server_);
  auto ex = co_await asio::this_coro::executor;
  StreamSocket& sock = conn->socket();
  Watchdog reset_timeout(ex, std::chrono::seconds(10), [&sock] { error_code ec; sock.close(ec); });
  if (conn->at_rest() && !terminating_) {
    // Leave nothing of this client behind: end its transaction, then the reset query.
    if (conn->tx_status != 'I') {
      if (auto r = co_await conn->run("ROLLBACK"); !r.ok()) conn->broken = true;
    }
    const std::string& reset = pool_->settings().reset_query;
    if (!conn->broken && !reset.empty()) {
      if (auto r = co_await conn->run(reset); !r.ok()) {
        log_warning("pool ", pool_->name(), ": server_reset_query failed: ", r.error().message);
        conn->broken = true;
      }
    }
  } else {
    conn->broken = true;
  }
  pool_->release(std::move(conn));
}

}  // namespace pgrelay::proxy
