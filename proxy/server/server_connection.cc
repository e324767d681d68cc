// Handling of server connections: connect, run a query, move between workers (login: server_login.cc).
#include "proxy/server/server_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <optional>

#include "protocol/error_fields.h"
#include "protocol/sqlstate.h"
#include "protocol/startup.h"
#include "proxy/base/log.h"
#include "proxy/net/connect.h"
#include "proxy/net/tcp_options.h"

namespace pgrelay::proxy {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;

Error failed(std::string what) {
  return {sqlstate::kConnectionFailure, "server connection failed: " + std::move(what)};
}

// Connects `socket` to the target's Unix socket, IP address, or resolved host name.
awaitable<error_code> connect_socket(StreamSocket& socket, const ServerTarget& target) {
  std::string unix_path = !target.host.empty() && target.host[0] == '/' ? target.endpoint_name() : std::string();
  const error_code ec = co_await connect_stream(socket, std::move(unix_path), target.host, target.port);
  co_return ec;
}

}  // namespace

awaitable<void> send_cancel_request(asio::any_io_executor ex, ServerTarget target, protocol::BackendKeyData key) {
  StreamSocket socket(ex);
  Watchdog watchdog(ex, std::chrono::seconds(5), [&socket] { error_code ignored; socket.close(ignored); });
  error_code ec = co_await connect_socket(socket, target);
  if (ec) {
    log_warning("cancel request to ", target.endpoint_name(), " failed: ", ec.message());
    co_return;
  }
  protocol::Buffer out;
  protocol::encode(protocol::CancelRequest{key.pid, key.secret}, out);
  co_await asio::async_write(socket, asio::buffer(out), ec_awaitable(ec));
  // The server closes the connection once it has read the request; wait for that so the
  // cancel has been delivered before the caller goes on.
  std::byte sink[16];
  co_await socket.async_read_some(asio::buffer(sink), ec_awaitable(ec));
}


std::string ServerTarget::endpoint_name() const {
  if (!host.empty() && host[0] == '/') return host + "/.s.PGSQL." + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string ServerTarget::describe() const { return user + "@" + endpoint_name() + "/" + dbname; }

ServerConnection::ServerConnection(StreamSocket socket, ServerTarget target, uint32_t max_message_size)
    : io_(std::move(socket)), target_(std::make_shared<const ServerTarget>(std::move(target))),
      max_message_size_(max_message_size) {
  rbuf_.resize(kReadBufferSize);
}

ServerConnection::~ServerConnection() { close(); }

awaitable<Result<std::unique_ptr<ServerConnection>>> ServerConnection::open(
    asio::any_io_executor ex, const ServerTarget& target, conf::Duration timeout,
    uint32_t max_message_size, const ServerTlsOptions& tls, const conf::TcpSettings& tcp) {
  // The connection exists before the socket connects so one watchdog covers connect, TLS and login.
  std::unique_ptr<ServerConnection> conn(new ServerConnection(StreamSocket(ex), target, max_message_size));
  StreamSocket& socket = conn->socket();
  Watchdog watchdog(ex, timeout, [&socket] { error_code ignored; socket.close(ignored); });
  std::string where = target.endpoint_name();
  error_code ec = co_await connect_socket(socket, target);
  if (ec) {
    co_return failed(watchdog.fired() ? "timeout connecting to " + where
                                      : "could not connect to " + where + ": " + ec.message());
  }
  if (target.host.empty() || target.host[0] != '/') {   // TCP, not a Unix socket's directory
    set_tcp_nodelay(socket.native_handle());
    if (const char* refused = set_tcp_keepalive(socket.native_handle(), tcp)) warn_tcp_option_refused(refused, "server");
  }

  if (tls.mode != conf::ServerTlsMode::kDisable) {
    Result<void> negotiated = co_await conn->negotiate_tls(tls);
    if (!negotiated.ok()) {
      conn->broken = true;
      if (watchdog.fired()) co_return failed("timeout negotiating TLS with " + where);
      co_return negotiated.error();
    }
  }
  Result<void> r = co_await conn->login();
  if (!r.ok()) {
    conn->broken = true;
    if (watchdog.fired()) co_return failed("timeout logging in to " + where);
    co_return r.error();
  }
  co_return std::move(conn);
}

awaitable<Result<void>> ServerConnection::write_all(const protocol::Buffer& out) {
  error_code ec;
  co_await io_.async_write(asio::buffer(out), ec);
  if (ec) {
    broken = true;
    co_return failed("write to " + target_->describe() + ": " + ec.message());
  }
  co_return Result<void>();
}

awaitable<Result<ServerConnection::Message>> ServerConnection::next_message() {
  // The login/run framer inspects everything and stops after each message; the read buffer
  // keeps whatever follows for the next call (or for the session's pump).
  protocol::Framer framer(max_message_size_);
  framer.inspect_all();
  for (;;) {
    std::optional<Message> got;
    auto consumed = framer.feed(
        protocol::Bytes(rbuf_.data() + rbegin_, rend_ - rbegin_), [&](const protocol::Frame& f, size_t) {
          if (f.body.data() >= rbuf_.data() && f.body.data() < rbuf_.data() + rbuf_.size()) {
            got = Message{f.type, f.body};
          } else {
            assembly_.assign(f.body.begin(), f.body.end());   // straddled reads: keep our own copy
            got = Message{f.type, protocol::Bytes(assembly_)};
          }
          return protocol::FrameAction::kStop;
        });
    if (!consumed.ok()) {
      broken = true;
      co_return failed("invalid data from " + target_->describe() + ": " + consumed.error().message);
    }
    rbegin_ += *consumed;
    if (got) co_return *got;
    rbegin_ = rend_ = 0;   // the framer holds the partial message
    error_code ec;
    size_t n = co_await io_.async_read_some(asio::buffer(rbuf_), ec);
    if (ec) {
      broken = true;
      co_return failed(ec == asio::error::eof ? "server closed the connection" : "read: " + ec.message());
    }
    rend_ = n;
  }
}


Result<bool> ServerConnection::own_query_step(const Message& msg, std::string_view sql, std::optional<Error>& error) {
  switch (msg.type) {
    case protocol::backend::kParameterStatus:
      note_parameter_status(msg.body);
      return false;
    case protocol::backend::kErrorResponse: {
      auto err = protocol::decode_error_notice(msg.body);
      if (err.ok()) error = Error{std::string(err->sqlstate), std::string(err->message)};
      else error = Error{sqlstate::kInternalError, "unreadable ErrorResponse from server"};
      if (err.ok() && err->is_fatal()) broken = true;
      return false;
    }
    case protocol::backend::kReadyForQuery: {
      auto rfq = protocol::decode_ready_for_query(msg.body);
      tx_status = rfq.ok() ? rfq->status : 'E';
      return true;
    }
    case protocol::backend::kCopyInResponse:
    case protocol::backend::kCopyOutResponse:
    case protocol::backend::kCopyBothResponse:
      broken = true;   // pgrelay's own queries never start COPY; do not try to recover
      return failed("unexpected COPY from \"" + std::string(sql) + "\"");
    default:
      return false;    // CommandComplete, NoticeResponse, ParseComplete, rows of a SHOW...
  }
}

awaitable<Result<void>> ServerConnection::run(std::string_view sql) {
  protocol::Buffer out;
  protocol::encode(protocol::Query{sql}, out);
  if (auto r = co_await write_all(out); !r.ok()) co_return r;
  std::optional<Error> error;
  for (;;) {
    auto msg = co_await next_message();
    if (!msg.ok()) co_return msg.error();
    auto ready = own_query_step(*msg, sql, error);
    if (!ready.ok()) co_return ready.error();
    if (!*ready) continue;
    if (error) co_return *error;
    co_return Result<void>();
  }
}

awaitable<Result<std::vector<ServerConnection::Row>>> ServerConnection::query_rows(
    std::string_view sql, const std::vector<std::string>& params, std::string_view prelude) {
  protocol::Buffer out;
  if (!prelude.empty()) {
    protocol::encode(protocol::Parse{"", prelude, {}}, out);
    protocol::encode(protocol::Bind{}, out);
    protocol::encode(protocol::Execute{"", 0}, out);
  }
  protocol::encode(protocol::Parse{"", sql, {}}, out);
  protocol::Bind bind;
  for (const std::string& p : params) bind.params.emplace_back(protocol::as_bytes(p));
  protocol::encode(bind, out);
  protocol::encode(protocol::Execute{"", 0}, out);
  protocol::encode(protocol::Sync{}, out);
  Result<void> written = co_await write_all(out);
  if (!written.ok()) co_return written.error();
  std::vector<Row> rows;
  std::optional<Error> error;
  bool in_prelude = !prelude.empty();   // until its CommandComplete
  for (;;) {
    auto msg = co_await next_message();
    if (!msg.ok()) co_return msg.error();
    if (in_prelude && (msg->type == protocol::backend::kDataRow || msg->type == protocol::backend::kCommandComplete)) {
      in_prelude = msg->type != protocol::backend::kCommandComplete;
      continue;
    }
    if (msg->type == protocol::backend::kDataRow) {
      auto row = protocol::decode_data_row(msg->body);
      if (!row.ok()) {
        error = row.error();
      } else if (rows.size() >= kMaxRows) {
        error = Error{sqlstate::kProtocolViolation, "more than " + std::to_string(kMaxRows) + " rows"};
      } else if (!error) {
        Row& r = rows.emplace_back();
        for (const auto& v : row->values) {
          if (v) r.emplace_back(std::string(protocol::as_string_view(*v)));
          else r.emplace_back(std::nullopt);
        }
      }
      continue;
    }
    auto ready = own_query_step(*msg, sql, error);
    if (!ready.ok()) co_return ready.error();
    if (!*ready) continue;
    if (error) co_return *error;
    co_return rows;
  }
}

std::optional<protocol::ParameterStatus> ServerConnection::note_parameter_status(protocol::Bytes body) {
  auto ps = protocol::decode_parameter_status(body);
  if (!ps.ok()) return std::nullopt;
  set_parameter(ps->name, ps->value);
  return *ps;
}

void ServerConnection::attach(const asio::any_io_executor& ex) {
  StreamSocket& socket = io_.socket();
  if (socket.get_executor() == ex || !socket.is_open()) return;
  error_code ec;
  auto protocol = socket.local_endpoint(ec).protocol();
  if (ec) { broken = true; return; }
  // The descriptor keeps its number (and O_NONBLOCK): a TLS session over it goes on as it was.
  int fd = socket.release(ec);
  if (ec) { broken = true; return; }
  socket = StreamSocket(ex, protocol, fd);
}

bool ServerConnection::idle_and_alive(bool peek) {
  if (broken || !io_.is_open() || rbegin_ != rend_) return false;
  if (io_.has_buffered()) return false;        // TLS already read something unprompted
  if (!peek) return true;
  char byte;
  ssize_t n = ::recv(io_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;                    // closed
  if (n > 0) return false;                     // unprompted message: FATAL, NOTIFY... not clean
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

void ServerConnection::close() {
  if (!io_.is_open()) return;
  if (!broken && at_rest()) {
    io_.try_write_now(asio::buffer(protocol::kTerminateMessage));
  }
  if (io_.is_tls()) io_.shutdown();   // close_notify
  error_code ec;
  io_.close(ec);
}

}  // namespace pgrelay::proxy
