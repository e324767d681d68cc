// A shallow lane stands by for stalls (session/lane_growth.h): a read that finds every lane
// connection stalled brings the lane another backend, up to pipeline_connections, rather than
// queue behind one; with pipeline_connections = 1 it queues.
#include <doctest/doctest.h>

#include <thread>

#include "harness.h"
#include "pipelining_util.h"

using namespace pgrelay::it;
using namespace std::chrono_literals;

namespace {

// One worker, so both clients share one lane. No wait bound to speak of: a running read never
// turns the lane's reads away, so only spreading can put the second one elsewhere.
RelayConfig one_lane(int metrics_port) {
  return pipelined(4, metrics_port)
      .set("workers", "1")
      .set("pipeline_max_wait", "\"10s\"")
      .set("admin_users", "[\"postgres\"]");
}

// Server connections the lane holds: SHOW POOLS counts them in sv_active.
int lane_held(PgrelayProcess& relay) {
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  int active = 0;
  for (const auto& row : exec(admin.get(), "SHOW POOLS").rows)
    if (row.at(0) == "postgres" && row.at(1) == "postgres") active += std::stoi(row.at(6).value_or("0"));
  return active;
}

// A plain read that runs until cancelled, on `c`; returns once the server runs it.
void start_endless_read(PGconn* c, PGconn* direct) {
  REQUIRE(exec(direct, "drop table if exists spread_slow; create table spread_slow as select g from generate_series(1, 4000) g").ok());
  const std::string slow = "select x.g from spread_slow x, spread_slow y, spread_slow z where x.g + y.g + z.g < 0";
  REQUIRE(PQsendQuery(c, slow.c_str()) == 1);
  const std::string running = "select count(*) from pg_stat_activity where query like '%spread_slow x%' and state = 'active' "
                              "and pid <> pg_backend_pid()";
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (scalar(direct, running) != "1" && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(25ms);
  REQUIRE(scalar(direct, running) == "1");
}

// The answer to the `select 5` sent on `c`, within 10 s.
void expect_five(PGconn* c) {
  REQUIRE(wait_readable(c, 10s));
  Result r(PQgetResult(c));
  REQUIRE(r != nullptr);
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "5");
  while (Result more{PQgetResult(c)}) {}
}

}  // namespace

TEST_CASE("a read that finds the lane's connection stalled runs at once on another backend, down the lane") {
  const int metrics_port = free_port();
  PgrelayProcess relay(one_lane(metrics_port));
  Conn direct = connect_ok(direct_conninfo());
  Conn a = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_spread"));
  Conn b = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_spread"));
  start_endless_read(a.get(), direct.get());
  // b's read is answered while a's still runs: it did not queue behind it.
  REQUIRE(PQsendQuery(b.get(), "select 5 as five") == 1);
  expect_five(b.get());
  CHECK(!wait_readable(a.get(), 0ms));   // a's read still running
  CHECK(lane_held(relay) == 2);
  // Both reads went down the lane: b brought it a connection, not the ordinary path.
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") == 2);
  cancel_expecting_57014(a.get());
  CHECK(scalar(a.get(), "select 8 as eight") == "8");
  REQUIRE(exec(direct.get(), "drop table spread_slow").ok());
}

TEST_CASE("with pipeline_connections = 1 a read queues behind the lane's stalled connection") {
  const int metrics_port = free_port();
  PgrelayProcess relay(one_lane(metrics_port).set("pipeline_connections", "1"));
  Conn direct = connect_ok(direct_conninfo());
  Conn a = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_packed"));
  Conn b = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_packed"));
  start_endless_read(a.get(), direct.get());
  REQUIRE(PQsendQuery(b.get(), "select 5 as five") == 1);
  std::this_thread::sleep_for(300ms);
  CHECK(!wait_readable(b.get(), 0ms));   // behind a's read, on its backend
  CHECK(lane_held(relay) == 1);
  cancel_expecting_57014(a.get());
  // The cancel was a's: b's read, written behind it, runs again if it hit it, and answers.
  expect_five(b.get());
  REQUIRE(exec(direct.get(), "drop table spread_slow").ok());
}
