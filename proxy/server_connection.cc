// Handling of server connections: connect, TLS, log in, run a query, move between workers.
#include "proxy/server_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <sys/socket.h>

#include <optional>

#include "protocol/error_fields.h"
#include "protocol/md5.h"
#include "protocol/scram.h"
#include "protocol/sqlstate.h"
#include "protocol/startup.h"
#include "proxy/log.h"

namespace pgrelay::proxy {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;

Error failed(std::string what) {
  return {sqlstate::kConnectionFailure, "server connection failed: " + std::move(what)};
}

// TLS could not be had as required: not worth retrying (see is_transient_login_failure).
Error tls_failed(std::string what) {
  return {sqlstate::kUnableToEstablishConnection, "server connection failed: " + std::move(what)};
}

std::string random_nonce() {
  unsigned char raw[18];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    // RAND_bytes failing means the CSPRNG is unusable; SCRAM must not continue with a weak nonce.
    return {};
  }
  return protocol::base64_encode(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
}

void set_tcp_nodelay(StreamSocket& s) {
  int one = 1;
  ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Connects `socket` to the target's Unix socket, IP address, or resolved host name.
awaitable<error_code> connect_socket(StreamSocket& socket, const ServerTarget& target) {
  error_code ec;
  if (!target.host.empty() && target.host[0] == '/') {
    co_await socket.async_connect(asio::local::stream_protocol::endpoint(target.endpoint_name()), ec_awaitable(ec));
    co_return ec;
  }
  auto addr = asio::ip::make_address(target.host, ec);
  if (!ec) {
    co_await socket.async_connect(tcp::endpoint(addr, uint16_t(target.port)), ec_awaitable(ec));
    co_return ec;
  }
  tcp::resolver resolver(socket.get_executor());
  auto results = co_await resolver.async_resolve(target.host, std::to_string(target.port), ec_awaitable(ec));
  if (ec) co_return ec;
  for (const auto& entry : results) {
    if (socket.is_open()) socket.close(ec);
    co_await socket.async_connect(entry.endpoint(), ec_awaitable(ec));
    if (!ec) break;
  }
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

namespace {
constexpr std::string_view kForwardedScramPrefix{"\0pgrelay-forwarded:", 19};
}  // namespace

std::string forwarded_scram_password(const protocol::ScramKeys& keys) {
  return std::string(kForwardedScramPrefix) + protocol::encode_scram_keys(keys);
}

std::optional<protocol::ScramKeys> forwarded_scram_keys(std::string_view password) {
  if (!password.starts_with(kForwardedScramPrefix)) return std::nullopt;
  auto keys = protocol::decode_scram_keys(password.substr(kForwardedScramPrefix.size()));
  if (!keys.ok()) return std::nullopt;
  return std::move(*keys);
}

// SCRAM exchange state across the three Authentication messages.
class ScramState {
 public:
  std::optional<protocol::ScramClient> client;
};

std::string ServerTarget::endpoint_name() const {
  if (!host.empty() && host[0] == '/') return host + "/.s.PGSQL." + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string ServerTarget::describe() const { return user + "@" + endpoint_name() + "/" + dbname; }

ServerConnection::ServerConnection(StreamSocket socket, ServerTarget target, uint32_t max_message_size)
    : io_(std::move(socket)), target_(std::move(target)), max_message_size_(max_message_size) {
  rbuf_.resize(kReadBufferSize);
}

ServerConnection::~ServerConnection() { close(); }

awaitable<Result<std::unique_ptr<ServerConnection>>> ServerConnection::open(
    asio::any_io_executor ex, const ServerTarget& target, conf::Duration timeout,
    uint32_t max_message_size, const ServerTlsOptions& tls) {
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
  if (socket.local_endpoint().protocol().family() != AF_UNIX) set_tcp_nodelay(socket);

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
    co_return failed("write to " + target_.describe() + ": " + ec.message());
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
      co_return failed("invalid data from " + target_.describe() + ": " + consumed.error().message);
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

awaitable<Result<void>> ServerConnection::negotiate_tls(const ServerTlsOptions& tls) {
  // https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.12
  const std::string mode = "server_tls_sslmode \"" + std::string(conf::to_string(tls.mode)) + "\"";
  const std::string where = target_.endpoint_name();
  if (!target_.host.empty() && target_.host[0] == '/') {
    // PostgreSQL never speaks TLS on a Unix socket (nor does libpq ask): prefer means plain.
    if (tls.mode == conf::ServerTlsMode::kPrefer) co_return Result<void>();
    co_return tls_failed(mode + " cannot be met over the Unix socket " + where + " (set server_tls_sslmode = "
                         "\"disable\" or \"prefer\" for this database)");
  }
  if (!tls.ctx) co_return tls_failed("no TLS context for servers (server_tls_* failed to load)");
  protocol::Buffer out;
  protocol::encode(protocol::SslRequest{}, out);
  if (auto r = co_await write_all(out); !r.ok()) co_return r;
  // Exactly one byte: anything the server sent after it would otherwise be taken as TLS-protected.
  char answer = 0;
  error_code ec;
  co_await io_.async_read(asio::buffer(&answer, 1), ec);
  if (ec) {
    broken = true;
    co_return failed(ec == asio::error::eof ? "server closed the connection after SSLRequest"
                                            : "read: " + ec.message());
  }
  if (answer == 'N') {
    if (tls.mode == conf::ServerTlsMode::kPrefer) co_return Result<void>();
    co_return tls_failed("server " + where + " does not support TLS, but " + mode + " requires it");
  }
  if (answer != 'S') {
    co_return tls_failed(std::string("unexpected answer to SSLRequest from ") + where + ": '" + answer + "'");
  }
  std::string error;
  SSL* ssl = new_server_ssl(tls.ctx.get(), tls.mode, target_.host, error);
  if (!ssl) co_return tls_failed("TLS setup for " + where + ": " + error);
  if (SSL_set_fd(ssl, io_.socket().native_handle()) != 1) {
    SSL_free(ssl);
    co_return tls_failed("TLS setup for " + where + ": SSL_set_fd failed");
  }
  co_await io_.handshake(std::make_unique<TlsStream>(ssl), ec);
  if (ec) {
    broken = true;
    const std::string why = io_.tls() && !io_.tls()->last_error().empty() ? io_.tls()->last_error() : ec.message();
    co_return tls_failed("TLS handshake with " + where + " failed (" + mode + "): " + why);
  }
  log_debug("server connection ", target_.describe(), ": ", SSL_get_version(ssl), " ", SSL_get_cipher_name(ssl));
  co_return Result<void>();
}

awaitable<Result<void>> ServerConnection::login() {
  protocol::Buffer out;
  protocol::StartupMessage startup;
  startup.params = {{"user", target_.user}, {"database", target_.dbname}};
  protocol::encode(startup, out);
  if (auto r = co_await write_all(out); !r.ok()) co_return r;

  ScramState scram;
  for (;;) {
    auto msg = co_await next_message();
    if (!msg.ok()) co_return msg.error();
    switch (msg->type) {
      case protocol::backend::kAuthentication: {
        auto auth = protocol::decode_authentication(msg->body);
        if (!auth.ok()) co_return failed("bad authentication message: " + auth.error().message);
        if (auto r = co_await authenticate(*auth, scram); !r.ok()) co_return r;
        break;
      }
      case protocol::backend::kParameterStatus:
        note_parameter_status(msg->body);
        break;
      case protocol::backend::kBackendKeyData: {
        auto key = protocol::decode_backend_key_data(msg->body);
        if (key.ok()) key_ = *key;
        break;
      }
      case protocol::backend::kReadyForQuery:
        tx_status = 'I';
        co_return Result<void>();
      case protocol::backend::kErrorResponse: {
        // The server's own SQLSTATE goes on (28P01 for a wrong password, 57P03 while it starts
        // up): clients and the pool's retry logic both need it.
        auto err = protocol::decode_error_notice(msg->body);
        if (!err.ok()) co_return failed("unreadable ErrorResponse");
        Error e = failed(std::string(err->message));
        if (!err->sqlstate.empty()) e.sqlstate = std::string(err->sqlstate);
        co_return e;
      }
      case protocol::backend::kNoticeResponse:
      case protocol::backend::kNegotiateProtocolVersion:
        break;
      default:
        co_return failed(std::string("unexpected message type '") + msg->type + "' during login");
    }
  }
}

awaitable<Result<void>> ServerConnection::authenticate(const protocol::Authentication& auth, ScramState& scram) {
  using protocol::AuthType;
  protocol::Buffer out;
  const std::optional<protocol::ScramKeys> keys = forwarded_scram_keys(target_.password);
  auto need_password = [&]() -> Result<void> {
    if (target_.password.empty())
      return failed("server asked for a password for user \"" + target_.user + "\" but none is configured");
    if (keys && auth.type != AuthType::kSasl) {
      // Permanent (28000, not retried): the server wants md5 or cleartext, which keys cannot answer.
      Error e = failed("server asked for a password for user \"" + target_.user + "\" but pgrelay has only the "
                       "client's SCRAM keys, which answer SCRAM-SHA-256 alone");
      e.sqlstate = sqlstate::kInvalidAuthorization;
      return e;
    }
    return {};
  };
  switch (auth.type) {
    case AuthType::kOk:
      co_return Result<void>();
    case AuthType::kCleartextPassword:
      if (auto r = need_password(); !r.ok()) co_return r;
      protocol::encode(protocol::PasswordMessage{target_.password}, out);
      break;
    case AuthType::kMd5Password: {
      if (auto r = need_password(); !r.ok()) co_return r;
      std::string response = protocol::md5_password_response(target_.password, target_.user, auth.md5_salt);
      protocol::encode(protocol::PasswordMessage{response}, out);
      break;
    }
    case AuthType::kSasl: {
      if (auto r = need_password(); !r.ok()) co_return r;
      bool offered = false, offered_plus = false;
      for (auto m : auth.sasl_mechanisms) {
        offered |= (m == protocol::kScramSha256);
        offered_plus |= (m == protocol::kScramSha256Plus);
      }
      // Over TLS, bind the exchange to the server's certificate when it offers PLUS (as libpq's
      // channel_binding=prefer): a man in the middle with another certificate cannot relay it.
      std::string binding;
      if (io_.is_tls()) binding = certificate_endpoint_hash(SSL_get0_peer_certificate(io_.tls()->ssl()));
      const bool plus = offered_plus && !binding.empty();
      if (!offered && !plus) co_return failed("server offers no SASL mechanism pgrelay supports");
      std::string nonce = random_nonce();
      if (nonce.empty()) co_return failed("no randomness for the SCRAM nonce");
      if (keys) scram.client.emplace(*keys, nonce);
      else scram.client.emplace(target_.password, nonce);
      if (!binding.empty()) scram.client->set_channel_binding(binding, plus);
      std::string first = scram.client->client_first_message();
      const std::string_view mechanism = plus ? protocol::kScramSha256Plus : protocol::kScramSha256;
      protocol::encode(protocol::SaslInitialResponse{mechanism, protocol::as_bytes(first)}, out);
      break;
    }
    case AuthType::kSaslContinue: {
      if (!scram.client) co_return failed("SASLContinue before SASL");
      auto final_msg = scram.client->handle_server_first(protocol::as_string_view(auth.data));
      if (!final_msg.ok()) {
        Error e = failed("SCRAM: " + final_msg.error().message);
        if (keys) e.sqlstate = final_msg.error().sqlstate;   // another secret on the server: not worth retrying
        co_return e;
      }
      protocol::encode(protocol::SaslResponse{protocol::as_bytes(*final_msg)}, out);
      break;
    }
    case AuthType::kSaslFinal: {
      if (!scram.client) co_return failed("SASLFinal before SASL");
      auto ok = scram.client->verify_server_final(protocol::as_string_view(auth.data));
      if (!ok.ok()) co_return failed("SCRAM: " + ok.error().message);
      co_return Result<void>();
    }
    default:
      co_return failed("unsupported authentication method " + std::to_string(int(auth.type)) +
                       " requested by the server");
  }
  co_return co_await write_all(out);
}

awaitable<Result<void>> ServerConnection::run(std::string_view sql) {
  protocol::Buffer out;
  protocol::encode(protocol::Query{sql}, out);
  if (auto r = co_await write_all(out); !r.ok()) co_return r;
  std::optional<Error> error;
  for (;;) {
    auto msg = co_await next_message();
    if (!msg.ok()) co_return msg.error();
    switch (msg->type) {
      case protocol::backend::kParameterStatus:
        note_parameter_status(msg->body);
        break;
      case protocol::backend::kErrorResponse: {
        auto err = protocol::decode_error_notice(msg->body);
        if (err.ok()) error = Error{std::string(err->sqlstate), std::string(err->message)};
        else error = Error{sqlstate::kInternalError, "unreadable ErrorResponse from server"};
        if (err.ok() && err->is_fatal()) broken = true;
        break;
      }
      case protocol::backend::kReadyForQuery: {
        auto rfq = protocol::decode_ready_for_query(msg->body);
        tx_status = rfq.ok() ? rfq->status : 'E';
        if (error) co_return *error;
        co_return Result<void>();
      }
      case protocol::backend::kCopyInResponse:
      case protocol::backend::kCopyOutResponse:
      case protocol::backend::kCopyBothResponse:
        broken = true;   // a reset query must not start COPY; do not try to recover
        co_return failed("unexpected COPY from \"" + std::string(sql) + "\"");
      default:
        break;   // CommandComplete, NoticeResponse, rows of a SHOW...: nothing to keep
    }
  }
}

awaitable<Result<std::vector<ServerConnection::Row>>> ServerConnection::query_rows(
    std::string_view sql, const std::vector<std::string>& params) {
  protocol::Buffer out;
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
  for (;;) {
    auto msg = co_await next_message();
    if (!msg.ok()) co_return msg.error();
    switch (msg->type) {
      case protocol::backend::kDataRow: {
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
        break;
      }
      case protocol::backend::kParameterStatus:
        note_parameter_status(msg->body);
        break;
      case protocol::backend::kErrorResponse: {
        auto err = protocol::decode_error_notice(msg->body);
        if (err.ok()) error = Error{std::string(err->sqlstate), std::string(err->message)};
        else error = Error{sqlstate::kInternalError, "unreadable ErrorResponse from server"};
        if (err.ok() && err->is_fatal()) broken = true;
        break;
      }
      case protocol::backend::kReadyForQuery: {
        auto rfq = protocol::decode_ready_for_query(msg->body);
        tx_status = rfq.ok() ? rfq->status : 'E';
        if (error) co_return *error;
        co_return rows;
      }
      case protocol::backend::kCopyInResponse:
      case protocol::backend::kCopyOutResponse:
      case protocol::backend::kCopyBothResponse:
        broken = true;
        co_return failed("unexpected COPY from \"" + std::string(sql) + "\"");
      default:
        break;   // ParseComplete, BindComplete, CommandComplete, NoticeResponse
    }
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

bool ServerConnection::idle_and_alive() {
  if (broken || !io_.is_open() || rbegin_ != rend_) return false;
  if (io_.has_buffered()) return false;        // TLS already read something unprompted
  char byte;
  ssize_t n = ::recv(io_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;                    // closed
  if (n > 0) return false;                     // unprompted message: FATAL, NOTIFY... not clean
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

void ServerConnection::close() {
  if (!io_.is_open()) return;
  if (!broken && at_rest()) {
    static constexpr unsigned char kTerminate[] = {'X', 0, 0, 0, 4};
    io_.try_write_now(asio::buffer(kTerminate));
  }
  if (io_.is_tls()) io_.shutdown();   // close_notify
  error_code ec;
  io_.close(ec);
}

}  // namespace pgrelay::proxy
