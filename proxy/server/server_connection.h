// Server connections: connecting and logging in to PostgreSQL, and the state of one connection.
//
// A ServerConnection is owned by exactly one party at a time: the Pool while idle, a client
// session while in use. It runs on the executor of its owner; attach() moves its socket to
// another worker's io_context when a session on another worker takes it from the pool.
//
// Over TLS the connection moves the same way: its SSL object is a member and OpenSSL knows the
// socket only by descriptor number, which attach() keeps (it releases the descriptor from one
// io_context and assigns it to the other). An SSL object may be used by any thread as long as
// one uses it at a time, which single ownership guarantees (the pool's mutex orders the
// hand-over). So TLS connections are shared across workers like plain ones and no worker's pool
// is split by transport.
#pragma once

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"
#include "protocol/framer.h"
#include "protocol/messages.h"
#include "protocol/result.h"
#include "protocol/scram.h"
#include "proxy/net/asio.h"
#include "proxy/request/prepared_statements.h"
#include "proxy/net/tls_context.h"
#include "proxy/net/transport.h"
#include "proxy/base/startup_params.h"

namespace pgrelay::proxy {

// Where and as whom to log in.
struct ServerTarget {
  std::string host;       // IP, host name, or a directory holding the Unix socket
  int port = 5432;
  std::string dbname;
  std::string user;
  std::string password;

  bool operator==(const ServerTarget&) const = default;
  std::string endpoint_name() const;   // "host:port" or the Unix socket path
  std::string describe() const;        // "user@host:port/dbname", for logs
};

// A client's SCRAM identity forwarded to the server (ClientKey recovered from its proof, see
// protocol/scram_server.h) travels as ServerTarget::password, because targets are built from a
// DatabaseEntry whose password is a string and whose value is part of the pool's identity. The
// form starts with a NUL byte, which no real password has (PostgreSQL passwords are C strings),
// so it is never mistaken for one; login() then answers SCRAM with the keys, and refuses md5 and
// cleartext, which need the password itself.
std::string forwarded_scram_password(const protocol::ScramKeys& keys);
std::optional<protocol::ScramKeys> forwarded_scram_keys(std::string_view password);

// TLS to the server: the database entry's server_tls_sslmode and the context to use (nullptr
// only when the mode is disable).
struct ServerTlsOptions {
  conf::ServerTlsMode mode = conf::ServerTlsMode::kDisable;
  SslCtxPtr ctx;
};

// A login failure worth retrying: the server is unreachable, starting up or shutting down
// (57P03), or full (53300); not a wrong password or a missing database.
inline bool is_transient_login_failure(const Error& e) {
  return e.sqlstate == "08006" || e.sqlstate == "57P03" || e.sqlstate == "53300";
}

// Sends a CancelRequest for the backend `key` over a new connection, as PostgreSQL requires.
// Best effort: failures are logged. Awaited on `ex`.
awaitable<void> send_cancel_request(asio::any_io_executor ex, ServerTarget target, protocol::BackendKeyData key);

class ServerConnection {
 public:
  using Clock = std::chrono::steady_clock;

  // Connects, negotiates TLS as `tls` says (SSLRequest before the StartupMessage),
  // authenticates (trust, cleartext, md5, SCRAM-SHA-256), then waits for the first
  // ReadyForQuery. Must be awaited on `ex`. Every failure's message starts "server connection
  // failed: " and says what failed; its SQLSTATE is 08006 when the connection itself failed
  // (refused, timeout, closed: worth retrying), 08001 when TLS could not be established as
  // required (no TLS on the server, a certificate that does not verify), and the server's own
  // when it refused the login.
  static awaitable<Result<std::unique_ptr<ServerConnection>>> open(
      asio::any_io_executor ex, const ServerTarget& target, conf::Duration timeout,
      uint32_t max_message_size, const ServerTlsOptions& tls = {}, const conf::TcpSettings& tcp = {});

  ~ServerConnection();

  StreamSocket& socket() { return io_.socket(); }
  // Its bytes, in clear or TLS: everything the session reads and writes goes through this.
  ServerTransport& transport() { return io_; }
  const ServerTransport& transport() const { return io_; }
  bool is_tls() const { return io_.is_tls(); }
  const ServerTarget& target() const { return *target_; }
  // The same, shared (cancel slots hold it while the connection is in use).
  const std::shared_ptr<const ServerTarget>& shared_target() const { return target_; }
  const protocol::BackendKeyData& backend_key() const { return key_; }

  // ParameterStatus values the server has reported, by name.
  const std::map<std::string, std::string>& parameters() const { return parameters_; }
  void set_parameter(std::string_view name, std::string_view value) { parameters_[std::string(name)] = std::string(value); }
  // Records a ParameterStatus body the server sent; returns it decoded (views into `body`).
  std::optional<protocol::ParameterStatus> note_parameter_status(protocol::Bytes body);

  // Runs one simple Query to its ReadyForQuery (reset queries, SETs on a client's behalf).
  // ParameterStatus updates are recorded; an ErrorResponse becomes the returned Error (its
  // SQLSTATE and message), after which the connection is still usable if it reached
  // ReadyForQuery. A broken connection returns 08006.
  awaitable<Result<void>> run(std::string_view sql);

  // Runs one statement with text parameters ($1...) over the extended protocol (Parse, Bind,
  // Execute, Sync on the unnamed statement) and returns its rows as text, NULL as nullopt.
  // Errors as run(). For auth_query; at most kMaxRows rows are kept (08P01 beyond).
  // `prelude`, when given, runs first in the same implicit transaction (before the Sync) and
  // its rows are dropped: a set_config(..., true) that holds for this statement alone.
  using Row = std::vector<std::optional<std::string>>;
  static constexpr size_t kMaxRows = 1000;
  awaitable<Result<std::vector<Row>>> query_rows(std::string_view sql, const std::vector<std::string>& params,
                                                 std::string_view prelude = {});

  // Moves the socket to the io_context of `ex` when it lives elsewhere. No operation may be
  // pending on it.
  void attach(const asio::any_io_executor& ex);

  // A cheap check before handing an idle connection out: false when the server closed it
  // or sent something unprompted (e.g. FATAL from pg_terminate_backend), also when that is
  // already inside OpenSSL rather than in the socket. Non-blocking. With `peek` false it looks
  // only at what pgrelay already holds, without asking the socket (no system call).
  bool idle_and_alive(bool peek = true);

  // Sends Terminate (best effort, non-blocking; then close_notify over TLS) and closes.
  void close();

  // The read buffer: the session's server->client pump (and ListenHub) read into it, after
  // take_unread() has handed them what login/run() read past their last message.
  protocol::Buffer& read_buffer() { return rbuf_; }
  // Hands the bytes login/run()/query_rows() read past their last message to whoever reads the
  // connection next: moves them to the front of read_buffer() and returns how many (0: none).
  size_t take_unread() {
    const size_t n = rend_ - rbegin_;
    if (n > 0 && rbegin_ > 0) std::memmove(rbuf_.data(), rbuf_.data() + rbegin_, n);
    rbegin_ = rend_ = 0;
    return n;
  }

  // Protocol state the session keeps up to date while it forwards traffic.
  char tx_status = 'I';     // from the last ReadyForQuery
  int in_flight = 0;        // Query/Sync/FunctionCall sent, ReadyForQuery not yet received
  bool unsynced = false;    // extended-protocol messages sent since the last Sync
  bool broken = false;      // I/O failed or a protocol error: never reuse

  // Transaction/statement mode: what it has prepared, and the replies still to come.
  ServerStatements statements;
  ReplyQueue replies;
  uint64_t statements_generation = 0;   // Services::schema_generation when `statements` was last emptied

  // True when the connection can be reset and pooled: nothing pending, no COPY, no error.
  bool at_rest() const { return !broken && in_flight == 0 && !unsynced && replies.empty(); }

  // Whose settings this connection carries: the parameter view of the client that used it
  // last (clients with the same startup settings share one, so a connection moving between
  // them needs no SET at all; nullptr after the reset query), and the unreported settings
  // pgrelay SET for clients (statement_timeout...).
  std::shared_ptr<const std::map<std::string, std::string>> carried_params;
  std::shared_ptr<const SessionSets> carried_sets;   // the client's SETs it carries
  std::map<std::string, std::string> applied_settings;

  Clock::time_point created_at = Clock::now();
  Clock::time_point idle_since = Clock::now();

 private:
  ServerConnection(StreamSocket socket, ServerTarget target, uint32_t max_message_size);

  struct Message { char type; protocol::Bytes body; };
  // The next whole message from the server (body valid until the next call).
  awaitable<Result<Message>> next_message();
  // One message of a query pgrelay runs itself (run(), query_rows()): ParameterStatus recorded,
  // an ErrorResponse kept in `error`, COPY refused (an error). True at ReadyForQuery.
  Result<bool> own_query_step(const Message& msg, std::string_view sql, std::optional<Error>& error);
  awaitable<Result<void>> negotiate_tls(const ServerTlsOptions& tls);

  awaitable<Result<void>> login();
  awaitable<Result<void>> write_all(const protocol::Buffer& out);
  awaitable<Result<void>> authenticate(const protocol::Authentication& auth, class ScramState& scram);

  ServerTransport io_;
  std::shared_ptr<const ServerTarget> target_;   // never null; shared with cancel slots
  uint32_t max_message_size_;
  protocol::BackendKeyData key_;
  std::map<std::string, std::string> parameters_;
  protocol::Buffer rbuf_;
  size_t rbegin_ = 0, rend_ = 0;
  protocol::Buffer assembly_;   // a message body that did not fit the read buffer
};

}  // namespace pgrelay::proxy
