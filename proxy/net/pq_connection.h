// A libpq connection on a worker's event loop: nonblocking, its socket waited on with Asio, so
// the loop never blocks on the server. Used where pgrelay needs libpq's own protocol support
// (the replication protocol's CopyBoth stream: session/replication_listener.h) rather than its
// own ServerConnection.
//
// One executor: every method runs on it, one call at a time (no two coroutines in one
// connection). The destructor closes the connection (PQfinish).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/result.h"
#include "proxy/net/asio.h"

struct pg_conn;   // libpq's PGconn, kept out of every includer

namespace pgrelay::proxy {

class PqConnection {
 public:
  explicit PqConnection(asio::any_io_executor ex);
  ~PqConnection();
  PqConnection(const PqConnection&) = delete;
  PqConnection& operator=(const PqConnection&) = delete;

  // Connects with libpq's keywords (host, port, dbname, user, password, sslmode, replication,
  // application_name, ...), giving up after `timeout`. Error: libpq's message.
  awaitable<Result<void>> connect(std::vector<std::pair<std::string, std::string>> params, std::chrono::milliseconds timeout);

  using Row = std::vector<std::optional<std::string>>;
  // Runs `sql` (the simple protocol; a replication connection's commands too) and returns the
  // last result's rows. Error: the server's SQLSTATE and message, or libpq's.
  awaitable<Result<std::vector<Row>>> query(std::string sql, std::chrono::milliseconds timeout);

  // Sends `sql`, which must start a CopyBoth stream (START_REPLICATION).
  awaitable<Result<void>> start_copy_both(std::string sql, std::chrono::milliseconds timeout);
  // The next CopyData message of the stream, waiting until `deadline`: nullopt when it passed
  // with nothing to read. Error: the stream ended or broke.
  awaitable<Result<std::optional<std::vector<std::byte>>>> read_copy(std::chrono::steady_clock::time_point deadline);
  // Sends one CopyData message (flushed before it returns).
  awaitable<Result<void>> write_copy(const std::vector<std::byte>& data);

  bool connected() const { return conn_ != nullptr; }
  // Fails the wait in progress, if any (its call returns an error soon). On the executor.
  void cancel();
  void close();

 private:
  enum class Wait { kRead, kWrite };
  // Waits until libpq's socket is ready for `what`, or `deadline`: false then (or on error).
  awaitable<bool> wait(Wait what, std::chrono::steady_clock::time_point deadline);
  // Sends what libpq has buffered; false on failure or past `deadline`.
  awaitable<bool> flush(std::chrono::steady_clock::time_point deadline);
  // Reads until a whole result is there; false on failure or past `deadline`.
  awaitable<bool> await_result(std::chrono::steady_clock::time_point deadline);
  Error failure(std::string what) const;

  asio::any_io_executor ex_;
  pg_conn* conn_ = nullptr;
  struct Socket;   // the descriptor Asio watches, over libpq's socket (never closed by Asio)
  std::unique_ptr<Socket> socket_;
};

}  // namespace pgrelay::proxy
