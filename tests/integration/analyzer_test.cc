// The query analyzer against a real PostgreSQL: SHOW QUERIES agrees with pg_stat_statements on
// the same server for the same workload, and the slow-query log catches what is over the threshold.
#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <unistd.h>

#include "harness.h"

using namespace pgrelay::it;

namespace {

// A slow-log line with the fields the clock fills (time, duration, wait) blanked, so a search for
// a statement's constant cannot match a timestamp that happens to contain the same digits.
std::string without_clock_fields(const std::string& log) {
  static const std::regex clock(R"re("(time|duration_ms|wait_ms)":("[^"]*"|[0-9.]+))re");
  return std::regex_replace(log, clock, "\"$1\":_");
}

struct QueryRow {
  long calls = 0, rows = 0, errors = 0;
  std::string error_classes;
};

// SHOW QUERIES, by normalized text, for database postgres.
std::map<std::string, QueryRow> show_queries(PGconn* admin) {
  auto r = exec(admin, "SHOW QUERIES");
  REQUIRE(r.ok());
  std::map<std::string, QueryRow> out;
  for (const auto& row : r.rows) {
    if (row.at(0) != "postgres") continue;
    QueryRow q{std::stol(*row.at(3)), std::stol(*row.at(4)), std::stol(*row.at(5)), row.at(6).value_or("")};
    out[*row.at(17)] = q;
  }
  return out;
}

// SHOW QUERIES once `text` has `calls` calls: a statement is recorded just after its last bytes
// went to the client, so the client may ask before the count moved (up to 2 s).
std::map<std::string, QueryRow> show_queries_when(PGconn* admin, const std::string& text, long calls) {
  auto q = show_queries(admin);
  for (int i = 0; i < 200 && q[text].calls < calls; ++i) {
    std::this_thread::sleep_for(10ms);
    q = show_queries(admin);
  }
  return q;
}

// pg_stat_statements' calls and rows summed over the statements whose text matches `like`.
std::pair<long, long> pgss(PGconn* direct, const std::string& like) {
  auto r = exec(direct, "select coalesce(sum(calls), 0), coalesce(sum(rows), 0) from pg_stat_statements where query like '" +
                            like + "'");
  REQUIRE(r.ok());
  return {std::stol(*r.rows.at(0).at(0)), std::stol(*r.rows.at(0).at(1))};
}

}  // namespace

TEST_CASE("SHOW QUERIES: calls and rows per fingerprint, as pg_stat_statements counts them") {
  Conn direct = connect_ok(direct_conninfo());
  REQUIRE(exec(direct.get(), "drop table if exists it_qs; create table it_qs (id int primary key, v int not null default 0);"
                             "insert into it_qs select g, 0 from generate_series(1, 100) g").ok());
  REQUIRE(exec(direct.get(), "select pg_stat_statements_reset()").ok());

  PgrelayProcess relay(RelayConfig().pool("transaction", 2).set("admin_users", "[\"postgres\"]"));
  Conn c = connect_ok(relay.conninfo());
  // One fingerprint two ways: literals in a simple Query, and a parameter of the extended protocol.
  for (int i = 1; i <= 30; ++i) REQUIRE(exec(c.get(), "select * from it_qs where id = " + std::to_string(i)).ok());
  for (int i = 1; i <= 20; ++i) REQUIRE(exec_params(c.get(), "select * from it_qs where id = $1", {std::to_string(i)}).ok());
  // Rows affected count as rows; a multi-statement Query counts each statement.
  for (int i = 0; i < 10; ++i) REQUIRE(exec(c.get(), "update it_qs set v = v + 1 where id < 5; select count(*) from it_qs").ok());
  // IN lists of any length are one fingerprint; failures count as calls and errors, by class.
  REQUIRE(exec(c.get(), "select id from it_qs where id in (1, 2, 3)").ok());
  REQUIRE(exec(c.get(), "select id from it_qs where id in (4, 5, 6, 7, 8)").ok());
  for (int i = 0; i < 3; ++i) CHECK(exec(c.get(), "insert into it_qs (id) values (1)").sqlstate == "23505");

  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  auto q = show_queries_when(admin.get(), "insert into it_qs(id) values (...)", 3);
  const QueryRow by_id = q["select * from it_qs where id = ?"];
  CHECK(by_id.calls == 50);
  CHECK(by_id.rows == 50);
  CHECK(q["update it_qs set v = v + ? where id < ?"].calls == 10);
  CHECK(q["update it_qs set v = v + ? where id < ?"].rows == 40);
  CHECK(q["select count(*) from it_qs"].calls == 10);
  CHECK(q["select id from it_qs where id in (...)"].calls == 2);
  CHECK(q["select id from it_qs where id in (...)"].rows == 8);
  const QueryRow failed = q["insert into it_qs(id) values (...)"];
  CHECK(failed.calls == 3);
  CHECK(failed.errors == 3);
  CHECK(failed.error_classes == "23:3");

  // The same workload as the server counted it. pg_stat_statements keeps the literal and the
  // parameter forms apart (a Const and a Param jumble differently), so they are summed.
  CHECK(pgss(direct.get(), "select * from it_qs where id = $1") == std::pair<long, long>{by_id.calls, by_id.rows});
  CHECK(pgss(direct.get(), "update it_qs set v = v + $1 where id < $2") == std::pair<long, long>{10, 40});
  CHECK(pgss(direct.get(), "select count(*) from it_qs") == std::pair<long, long>{10, 10});
  CHECK(pgss(direct.get(), "select id from it_qs where id in %").first == 2);
  CHECK(pgss(direct.get(), "select id from it_qs where id in %").second == 8);

  // The time columns are consistent: min <= p50 <= p99 <= max, total = mean * calls (rounded).
  auto r = exec(admin.get(), "SHOW QUERIES");
  REQUIRE(r.ok());
  for (const auto& row : r.rows) {
    const double total = std::stod(*row.at(7)), mean = std::stod(*row.at(8)), min = std::stod(*row.at(9)),
                 max = std::stod(*row.at(10)), p50 = std::stod(*row.at(11)), p99 = std::stod(*row.at(13));
    CHECK(min <= p50);
    CHECK(p50 <= p99);
    CHECK(p99 <= max);
    CHECK(mean <= max);
    CHECK(total >= max);
    CHECK(row.at(2)->size() == 16);   // the fingerprint in hex
  }

  // RESET QUERIES forgets them; stats_users may not run it.
  REQUIRE(exec(admin.get(), "RESET QUERIES").ok());
  CHECK(show_queries(admin.get()).count("select * from it_qs where id = ?") == 0);
  REQUIRE(exec(c.get(), "select * from it_qs where id = 99").ok());
  CHECK(show_queries_when(admin.get(), "select * from it_qs where id = ?", 1)["select * from it_qs where id = ?"].calls == 1);
  exec(direct.get(), "drop table it_qs");
}

TEST_CASE("query_stats = false: nothing is counted") {
  PgrelayProcess relay(RelayConfig().pool("transaction", 2).set("admin_users", "[\"postgres\"]").set("query_stats", "false"));
  Conn c = connect_ok(relay.conninfo());
  REQUIRE(scalar(c.get(), "select 41 + 1") == "42");
  // Reads that differ only in their constants: one judgement for them all, remembered by a
  // fingerprint made without query_stats' (the lanes' verdict, client_replicas.cc).
  for (int i = 0; i < 5; ++i) CHECK(scalar(c.get(), "select " + std::to_string(i) + " + 1") == std::to_string(i + 1));
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  auto r = exec(admin.get(), "SHOW QUERIES");
  REQUIRE(r.ok());
  CHECK(r.rows.empty());
}

TEST_CASE("the slow-query log: over slow_query_threshold logged with who ran it, under it not") {
  char path[] = "/tmp/pgrelay-it-slow-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    PgrelayProcess relay(RelayConfig()
                             .pool("transaction", 2)
                             .set("admin_users", "[\"postgres\"]")
                             .set("slow_query_threshold", "\"300ms\"")
                             .set("slow_query_log", "\"" + std::string(path) + "\""));
    Conn c = connect_ok(relay.conninfo("postgres", "postgres", "application_name=it_slow"));
    REQUIRE(exec(c.get(), "select pg_sleep(0.05)").ok());
    REQUIRE(exec(c.get(), "select pg_sleep(0.4)").ok());
    REQUIRE(exec_params(c.get(), "select pg_sleep($1)", {"0.35"}).ok());
    Conn admin = connect_ok(relay.conninfo("pgrelay"));
    auto slow = exec(admin.get(), "SHOW SLOW");
    for (int i = 0; i < 200 && slow.ok() && slow.rows.size() < 2; ++i) {
      std::this_thread::sleep_for(10ms);
      slow = exec(admin.get(), "SHOW SLOW");
    }
    REQUIRE(slow.ok());
    REQUIRE(slow.rows.size() == 2);   // both over 300 ms; the 50 ms one is not there
    CHECK(slow.rows[0].at(10) == "select pg_sleep(?)");
    CHECK(slow.rows[0].at(4) == "it_slow");
    CHECK(std::stod(*slow.rows[0].at(6)) >= 300.0);
    CHECK(std::stod(*slow.rows[1].at(6)) >= 300.0);
  }
  const std::string log = read_file(path);
  std::remove(path);
  size_t lines = 0;
  for (size_t at = 0; (at = log.find('\n', at)) != std::string::npos; ++at) ++lines;
  CHECK(lines == 2);
  CHECK(log.find("\"query\":\"select pg_sleep(?)\"") != std::string::npos);
  CHECK(log.find("\"application_name\":\"it_slow\"") != std::string::npos);
  CHECK(log.find("\"database\":\"postgres\"") != std::string::npos);
  CHECK(log.find("\"client\":\"127.0.0.1:") != std::string::npos);
  // log_parameters is off: neither the text with its constants nor the parameter values.
  const std::string logged = without_clock_fields(log);
  CHECK(logged.find("\"time\":_") != std::string::npos);
  CHECK(logged.find("0.4") == std::string::npos);
  CHECK(logged.find("0.35") == std::string::npos);
  CHECK(log.find("\"parameters\"") == std::string::npos);
}
