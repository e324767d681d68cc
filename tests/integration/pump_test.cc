// The server->client pump around transactions: two clients alternating on one connection, a
// pipeline, a client idle a while, a cancel, statement mode's refusal. Whatever the pump does
// between transactions, it must never touch a connection it gave back, nor miss an answer.
#include <doctest/doctest.h>

#include <thread>

#include "harness.h"

using namespace pgrelay::it;

TEST_CASE("transaction mode, one server connection: two clients alternate, every answer to its own client") {
  PgrelayProcess relay(RelayConfig().pool("transaction", 1));
  Conn a = connect_ok(relay.conninfo());
  Conn b = connect_ok(relay.conninfo());
  const std::string pid = scalar(a.get(), "select pg_backend_pid()");
  for (int i = 0; i < 50; ++i) {
    // The only connection goes from A to B and back, every transaction.
    CHECK(scalar(a.get(), "select 'a" + std::to_string(i) + "'") == "a" + std::to_string(i));
    CHECK(scalar(b.get(), "select 'b" + std::to_string(i) + "'") == "b" + std::to_string(i));
  }
  CHECK(scalar(b.get(), "select pg_backend_pid()") == pid);   // really one connection, shared
  // A pipelined batch: every answer arrives, in order.
  REQUIRE(PQenterPipelineMode(a.get()) == 1);
  for (int i = 0; i < 5; ++i) REQUIRE(PQsendQueryParams(a.get(), "select $1::int", 1, nullptr,
                                                         std::vector<const char*>{std::to_string(i).c_str()}.data(),
                                                         nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(a.get()) == 1);
  for (int i = 0; i < 5; ++i) {
    Result r(PQgetResult(a.get()));
    REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == std::to_string(i));
    CHECK(PQgetResult(a.get()) == nullptr);
  }
  Result sync(PQgetResult(a.get()));
  CHECK(PQresultStatus(sync.get()) == PGRES_PIPELINE_SYNC);
  REQUIRE(PQexitPipelineMode(a.get()) == 1);
}

TEST_CASE("transaction mode: a client idle a while is answered; a cancel after back-to-back queries reaches its query") {
  PgrelayProcess relay(RelayConfig().pool("transaction", 1));
  Conn a = connect_ok(relay.conninfo());
  for (int i = 0; i < 3; ++i) CHECK(scalar(a.get(), "select 1") == "1");   // back to back
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));          // idle a while
  CHECK(scalar(a.get(), "select 2") == "2");
  CHECK(scalar(a.get(), "select 3") == "3");
  // A long query, cancelled: the pump carries the cancel's error.
  REQUIRE(PQsendQuery(a.get(), "select pg_sleep(10)") == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  PGcancel* cancel = PQgetCancel(a.get());
  REQUIRE(cancel != nullptr);
  char err[256];
  CHECK(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  REQUIRE(wait_readable(a.get(), std::chrono::seconds(3)));
  Result r(PQgetResult(a.get()));
  const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
  CHECK(std::string(state ? state : "") == "57014");
  while (PGresult* rest = PQgetResult(a.get())) PQclear(rest);
  // The connection goes on serving, uncancelled, and passes to the next client when A leaves.
  CHECK(scalar(a.get(), "select 4") == "4");
  a = Conn();
  Conn b = connect_ok(relay.conninfo());
  CHECK(scalar(b.get(), "select 5") == "5");
}

TEST_CASE("statement mode: after back-to-back statements, a transaction block is still refused") {
  PgrelayProcess relay(RelayConfig().pool("statement", 1));
  Conn a = connect_ok(relay.conninfo());
  Conn b = connect_ok(relay.conninfo());
  for (int i = 0; i < 5; ++i) CHECK(scalar(a.get(), "select " + std::to_string(i)) == std::to_string(i));
  // Refused: pgrelay ends the session (pooling_test reads the FATAL's text with a raw client).
  CHECK_FALSE(exec(a.get(), "begin").ok());
  CHECK(PQstatus(a.get()) == CONNECTION_BAD);
  // B gets the connection, rolled back: no transaction was left open on it.
  CHECK(scalar(b.get(), "select 6") == "6");
  CHECK(PQtransactionStatus(b.get()) == PQTRANS_IDLE);
}
