// Pipelining of extended-protocol reads (docs/pipelining.md): PQexecParams (an unnamed Parse,
// Bind, Describe, Execute, Sync) and PQexecPrepared of named statements share lanes, each
// statement routed for the lane connection it lands on; a failed unnamed Parse is forgotten as
// PostgreSQL forgets it; a shared statement made stale by DDL outside pgrelay is sent again.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "harness.h"
#include "pipelining_util.h"

using namespace pgrelay::it;

namespace {

// One text parameter; the result, or nullptr's status as a failed Result.
Result exec_params(PGconn* c, const char* sql, const std::string& param) {
  const char* values[1] = {param.c_str()};
  return Result(PQexecParams(c, sql, 1, nullptr, values, nullptr, nullptr, 0));
}

Result exec_prepared(PGconn* c, const char* name, const std::string& param) {
  const char* values[1] = {param.c_str()};
  return Result(PQexecPrepared(c, name, 1, values, nullptr, nullptr, 0));
}

std::string sqlstate_of(const Result& r) {
  const char* s = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  return s ? s : "";
}

}  // namespace

TEST_CASE("extended-protocol reads go down lanes, each answered under its own settings and names") {
  const int metrics_port = free_port();
  PgrelayProcess relay(pipelined(2, metrics_port));
  constexpr int kClients = 8, kRounds = 200;
  std::atomic<int> wrong{0}, failed{0}, done{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      Conn c = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_extended"));
      const bool tokyo = t % 2 == 1;
      if (tokyo && !exec(c.get(), "set timezone = 'Asia/Tokyo'").ok()) ++failed;
      const std::string want_zone = tokyo ? "+09" : "+00";
      // The same name and text in every client (one shared server statement), and a name whose
      // text differs between clients.
      Result p1(PQprepare(c.get(), "lane_read", "select $1::int + 1 as n, '2020-01-01 00:00:00+00'::timestamptz::text as at",
                          1, nullptr));
      const std::string own = "select $1::int * " + std::to_string(t + 2) + " as n";
      Result p2(PQprepare(c.get(), "lane_own", own.c_str(), 1, nullptr));
      if (PQresultStatus(p1.get()) != PGRES_COMMAND_OK || PQresultStatus(p2.get()) != PGRES_COMMAND_OK) {
        ++failed;
        return;
      }
      auto check = [&](const Result& r, const std::string& want_n, bool zone, int round, const char* what) {
        if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
          if (failed++ == 0) MESSAGE("client ", t, " round ", round, " ", what, ": ", sqlstate_of(r), " ",
                                     r ? PQresultErrorMessage(r.get()) : "");
          return;
        }
        bool ok = PQgetvalue(r.get(), 0, 0) == want_n;
        if (zone) {
          const std::string at = PQgetvalue(r.get(), 0, 1);
          ok = ok && at.size() >= 3 && at.substr(at.size() - 3) == want_zone;
        }
        if (!ok && wrong++ == 0) MESSAGE("client ", t, " round ", round, " ", what, ": got ", PQgetvalue(r.get(), 0, 0));
        if (ok) ++done;
      };
      for (int i = 0; i < kRounds; ++i) {
        const int n = t * 100000 + i;
        if (i % 40 == 39) {
          // An unnamed Parse the server refuses: the error, and the client's unnamed statement is
          // gone (libpq parses again for its next PQexecParams anyway).
          Result e = exec_params(c.get(), "select n from lane_no_such_table where n = $1", std::to_string(n));
          if (sqlstate_of(e) != "42P01" && wrong++ == 0) MESSAGE("client ", t, ": ", sqlstate_of(e));
          continue;
        }
        Result a = exec_params(c.get(), "select $1::int - 1 as n, '2020-01-01 00:00:00+00'::timestamptz::text as at",
                               std::to_string(n));
        check(a, std::to_string(n - 1), true, i, "params");
        Result b = exec_prepared(c.get(), "lane_read", std::to_string(n));
        check(b, std::to_string(n + 1), true, i, "lane_read");
        Result o = exec_prepared(c.get(), "lane_own", std::to_string(n));
        check(o, std::to_string(int64_t(n) * (t + 2)), false, i, "lane_own");
      }
    });
  }
  for (auto& t : clients) t.join();
  int reads_each = 0;
  for (int i = 0; i < kRounds; ++i) reads_each += i % 40 == 39 ? 0 : 3;
  CHECK(failed == 0);
  CHECK(wrong == 0);
  CHECK(done == kClients * reads_each);
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") > kClients * reads_each / 4);
  CHECK(backends_of("lane_extended") <= 2);
}

TEST_CASE("a pipelined prepared statement made stale by DDL outside pgrelay is sent again, not failed") {
  const int metrics_port = free_port();
  PgrelayProcess relay(pipelined(4, metrics_port));
  Conn direct = connect_ok(direct_conninfo());
  REQUIRE(exec(direct.get(), "drop table if exists lane_ddl; create table lane_ddl (a int); insert into lane_ddl values (1)").ok());
  std::vector<Conn> clients;
  for (int t = 0; t < 4; ++t) {
    clients.push_back(connect_ok(relay.conninfo()));
    Result p(PQprepare(clients.back().get(), "lane_ddl_read", "select * from lane_ddl where a >= $1", 1, nullptr));
    REQUIRE(PQresultStatus(p.get()) == PGRES_COMMAND_OK);
  }
  const double before = metric(metrics_port, "pgrelay_pipelined_statements_total");
  for (int round = 0; round < 5; ++round)
    for (auto& c : clients) {
      Result r = exec_prepared(c.get(), "lane_ddl_read", "0");
      REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
      CHECK(PQnfields(r.get()) == 1);
    }
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") > before);
  // The server's cached plans of the shared statement no longer fit ("cached plan must not change
  // result type"): pgrelay prepares them again and the clients see the new shape.
  REQUIRE(exec(direct.get(), "alter table lane_ddl add column b int default 2").ok());
  const double retries = metric(metrics_port, "pgrelay_pipeline_retries_total");
  for (int round = 0; round < 3; ++round)
    for (auto& c : clients) {
      Result r = exec_prepared(c.get(), "lane_ddl_read", "0");
      CHECK_MESSAGE(PQresultStatus(r.get()) == PGRES_TUPLES_OK, sqlstate_of(r), " ", PQresultErrorMessage(r.get()));
      if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) continue;
      CHECK(PQnfields(r.get()) == 2);
      CHECK(std::string(PQgetvalue(r.get(), 0, 1)) == "2");
    }
  CHECK(metric(metrics_port, "pgrelay_pipeline_retries_total") > retries);   // sent again in the lane
  REQUIRE(exec(direct.get(), "drop table lane_ddl").ok());
}
