// libpq, nonblocking, on an Asio event loop (pq_connection.h).
#include "proxy/net/pq_connection.h"

#include <libpq-fe.h>

#include <boost/asio/posix/stream_descriptor.hpp>

namespace pgrelay::proxy {
namespace {

std::string trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::chrono::steady_clock::time_point after(std::chrono::milliseconds timeout) { return std::chrono::steady_clock::now() + timeout; }

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

Error result_error(const PGresult* r) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return Error{state ? state : "", trimmed(PQresultErrorMessage(r))};
}

}  // namespace

struct PqConnection::Socket {
  Socket(const asio::any_io_executor& ex, int fd) : fd(fd), descriptor(ex, fd) {}
  ~Socket() { (void)descriptor.release(); }   // libpq owns the descriptor and closes it
  int fd;
  asio::posix::stream_descriptor descriptor;
};

PqConnection::PqConnection(asio::any_io_executor ex) : ex_(std::move(ex)) {}

PqConnection::~PqConnection() { close(); }

void PqConnection::cancel() {
  if (socket_) socket_->descriptor.cancel();
}

void PqConnection::close() {
  socket_.reset();
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
}

Error PqConnection::failure(std::string what) const {
  std::string message = conn_ ? trimmed(PQerrorMessage(conn_)) : "";
  return Error{"", message.empty() ? what : what + ": " + message};
}

awaitable<bool> PqConnection::wait(Wait what, std::chrono::steady_clock::time_point deadline) {
  const int fd = conn_ ? PQsocket(conn_) : -1;
  if (fd < 0) co_return false;
  if (!socket_ || socket_->fd != fd) {
    socket_.reset();
    socket_ = std::make_unique<Socket>(ex_, fd);
  }
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) co_return false;
  asio::posix::stream_descriptor* descriptor = &socket_->descriptor;
  Watchdog watchdog(ex_, left, [descriptor] { descriptor->cancel(); });
  const auto type = what == Wait::kRead ? asio::posix::stream_descriptor::wait_read : asio::posix::stream_descriptor::wait_write;
  error_code ec;
  co_await descriptor->async_wait(type, ec_awaitable(ec));
  co_return !ec && !watchdog.fired();
}

awaitable<Result<void>> PqConnection::connect(std::vector<std::pair<std::string, std::string>> params,
                                              std::chrono::milliseconds timeout) {
  close();
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectStartParams(keys.data(), values.data(), 0);
  if (!conn_) co_return Error{"", "out of memory"};
  if (PQstatus(conn_) == CONNECTION_BAD) co_return failure("cannot connect");
  const auto deadline = after(timeout);
  PostgresPollingStatusType status = PGRES_POLLING_WRITING;
  for (;;) {
    if (status == PGRES_POLLING_OK) break;
    if (status == PGRES_POLLING_FAILED) co_return failure("cannot connect");
    const Wait what = status == PGRES_POLLING_READING ? Wait::kRead : Wait::kWrite;
    const bool ready = co_await wait(what, deadline);
    if (!ready) co_return failure("cannot connect within " + std::to_string(timeout.count()) + " ms");
    status = PQconnectPoll(conn_);
  }
  if (PQsetnonblocking(conn_, 1) != 0) co_return failure("cannot make the connection nonblocking");
  co_return Result<void>{};
}

awaitable<bool> PqConnection::flush(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const int r = PQflush(conn_);
    if (r == 0) co_return true;
    if (r < 0) co_return false;
    const bool ready = co_await wait(Wait::kWrite, deadline);
    if (!ready) co_return false;
  }
}

awaitable<bool> PqConnection::await_result(std::chrono::steady_clock::time_point deadline) {
  while (PQisBusy(conn_)) {
    const bool ready = co_await wait(Wait::kRead, deadline);
    if (!ready || !PQconsumeInput(conn_)) co_return false;
  }
  co_return true;
}

awaitable<Result<std::vector<PqConnection::Row>>> PqConnection::query(std::string sql, std::chrono::milliseconds timeout) {
  if (!conn_) co_return Error{"", "not connected"};
  const auto deadline = after(timeout);
  if (!PQsendQuery(conn_, sql.c_str())) co_return failure("cannot send a query");
  const bool sent = co_await flush(deadline);
  if (!sent) co_return failure("cannot send a query");
  std::vector<Row> rows;
  std::optional<Error> error;
  for (;;) {
    const bool ready = co_await await_result(deadline);
    if (!ready) co_return failure("no answer within " + std::to_string(timeout.count()) + " ms");
    ResultPtr r(PQgetResult(conn_));
    if (!r) break;
    const ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      rows.clear();
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        Row row;
        for (int j = 0; j < PQnfields(r.get()); ++j) {
          if (PQgetisnull(r.get(), i, j)) row.emplace_back();
          else row.emplace_back(std::string(PQgetvalue(r.get(), i, j), size_t(PQgetlength(r.get(), i, j))));
        }
        rows.push_back(std::move(row));
      }
    } else if (!error) {
      error = status == PGRES_FATAL_ERROR ? result_error(r.get()) : Error{"", std::string("unexpected result ") + PQresStatus(status)};
    }
  }
  if (error) co_return *error;
  co_return rows;
}

awaitable<Result<void>> PqConnection::start_copy_both(std::string sql, std::chrono::milliseconds timeout) {
  if (!conn_) co_return Error{"", "not connected"};
  const auto deadline = after(timeout);
  if (!PQsendQuery(conn_, sql.c_str())) co_return failure("cannot send " + sql);
  const bool sent = co_await flush(deadline);
  if (!sent) co_return failure("cannot send " + sql);
  const bool ready = co_await await_result(deadline);
  if (!ready) co_return failure("no answer within " + std::to_string(timeout.count()) + " ms");
  ResultPtr r(PQgetResult(conn_));
  if (!r) co_return failure("no answer");
  if (PQresultStatus(r.get()) == PGRES_COPY_BOTH) co_return Result<void>{};
  Error error = result_error(r.get());
  // Drain the rest, so the connection could run another statement.
  while (ResultPtr rest{PQgetResult(conn_)}) {
  }
  co_return error;
}

awaitable<Result<std::optional<std::vector<std::byte>>>> PqConnection::read_copy(std::chrono::steady_clock::time_point deadline) {
  if (!conn_) co_return Error{"", "not connected"};
  for (;;) {
    char* buffer = nullptr;
    const int n = PQgetCopyData(conn_, &buffer, 1);
    if (n > 0) {
      std::vector<std::byte> data(reinterpret_cast<const std::byte*>(buffer), reinterpret_cast<const std::byte*>(buffer) + n);
      PQfreemem(buffer);
      co_return std::optional(std::move(data));
    }
    if (n == -1) {   // the server ended the stream: its result says why
      ResultPtr r(PQgetResult(conn_));
      if (r && PQresultStatus(r.get()) == PGRES_FATAL_ERROR) co_return result_error(r.get());
      co_return Error{"", "the server ended the replication stream"};
    }
    if (n < -1) co_return failure("the replication stream broke");
    const bool ready = co_await wait(Wait::kRead, deadline);
    if (!ready) {
      if (std::chrono::steady_clock::now() >= deadline) co_return std::optional<std::vector<std::byte>>{};
      co_return failure("the replication stream broke");
    }
    if (!PQconsumeInput(conn_)) co_return failure("the replication stream broke");
  }
}

awaitable<Result<void>> PqConnection::write_copy(const std::vector<std::byte>& data) {
  if (!conn_) co_return Error{"", "not connected"};
  const auto deadline = after(std::chrono::seconds(10));
  for (;;) {
    const int r = PQputCopyData(conn_, reinterpret_cast<const char*>(data.data()), int(data.size()));
    if (r == 1) break;
    if (r < 0) co_return failure("cannot write to the replication stream");
    const bool flushed = co_await flush(deadline);   // libpq's buffer is full: make room
    if (!flushed) co_return failure("cannot write to the replication stream");
  }
  const bool flushed = co_await flush(deadline);
  if (!flushed) co_return failure("cannot write to the replication stream");
  co_return Result<void>{};
}

}  // namespace pgrelay::proxy
