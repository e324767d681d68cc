// Pipelining (docs/pipelining.md): lone autocommit reads of many clients on shared lanes, each
// client still answered under its own settings, a cancel answered for its client alone, a lane
// connection lost without an error for anybody.
#include <doctest/doctest.h>

#include <atomic>
#include <regex>
#include <thread>
#include <vector>

#include "harness.h"

using namespace pgrelay::it;

namespace {

// A pgrelay pipelining in transaction mode, with its metrics on `metrics_port`.
RelayConfig pipelined(int pool_size, int metrics_port) {
  return RelayConfig()
      .pool("transaction", pool_size)
      .set("pipelining", "true")
      .set("metrics_listen", "\"127.0.0.1:" + std::to_string(metrics_port) + "\"");
}

// A counter of pgrelay's /metrics (0 when absent).
double metric(int metrics_port, const std::string& name) {
  const std::string body = http_get(metrics_port, "/metrics").body;
  std::smatch m;
  if (!std::regex_search(body, m, std::regex("\n" + name + " ([0-9.e+]+)"))) return 0;
  return std::stod(m[1]);
}

template <class Pred>
bool eventually(Pred pred, Millis timeout = 5s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(25ms);
  }
  return true;
}

}  // namespace

TEST_CASE("pipelined reads: 12 clients on a pool of 2, each answered under its own settings") {
  const int metrics_port = free_port();
  PgrelayProcess relay(pipelined(2, metrics_port));
  constexpr int kClients = 12, kRounds = 300;
  std::atomic<int> wrong{0}, failed{0}, done{0};
  int reads_each = 0;   // the plain reads of one client's rounds
  for (int i = 0; i < kRounds; ++i) reads_each += i % 50 != 49 && i % 25 != 24;
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      Conn c = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_settings"));
      // Half the clients read timestamps in Tokyo: a cast's output follows TimeZone, so an answer
      // run under another client's settings shows.
      const bool tokyo = t % 2 == 1;
      if (tokyo && !exec(c.get(), "set timezone = 'Asia/Tokyo'").ok()) ++failed;
      const std::string want_zone = tokyo ? "+09" : "+00";
      for (int i = 0; i < kRounds; ++i) {
        const std::string n = std::to_string(t * 100000 + i);
        if (i % 50 == 49) {   // an error in the lane, then it goes on
          auto e = exec(c.get(), "select 1/0");
          if (e.sqlstate != "22012" && wrong++ == 0) MESSAGE("client ", t, " round ", i, ": ", e.sqlstate, " ", e.message);
          continue;
        }
        if (i % 25 == 24) {   // a transaction: the ordinary path, between pipelined reads
          auto b = exec(c.get(), "begin; select " + n + "; commit");
          if (!b.ok() && failed++ == 0) MESSAGE("client ", t, " round ", i, ": ", b.sqlstate, " ", b.message);
          continue;
        }
        auto r = exec(c.get(), "select '2020-01-01 00:00:00+00'::timestamptz::text as at, " + n + " as n");
        if (!r.ok() || r.rows.size() != 1) {
          if (failed++ == 0) MESSAGE("client ", t, " round ", i, ": ", r.sqlstate, " ", r.message);
          continue;
        }
        const std::string at = r.rows[0].at(0).value_or("");
        if (r.rows[0].at(1) != n || at.size() < 3 || at.substr(at.size() - 3) != want_zone) ++wrong;
        ++done;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(failed == 0);
  CHECK(wrong == 0);
  CHECK(done == kClients * reads_each);
  // They went down lanes (not all: the first of each settings brings a connection, and a
  // connection busy past pipeline_max_wait sends the next one the ordinary way).
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") > kClients * kRounds / 4);
  // Never more server connections than the pool allows.
  Conn direct = connect_ok(direct_conninfo());
  CHECK(std::stoi(scalar(direct.get(), "select count(*) from pg_stat_activity where backend_type = 'client backend' "
                                       "and application_name = 'lane_settings'")) <= 2);
}

TEST_CASE("a pipelined read cancelled by its client gets 57014 and the server stops running it") {
  const int metrics_port = free_port();
  PgrelayProcess relay(pipelined(2, metrics_port));
  Conn direct = connect_ok(direct_conninfo());
  REQUIRE(exec(direct.get(), "drop table if exists lane_slow; create table lane_slow as select g from generate_series(1, 4000) g").ok());
  Conn a = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_cancel"));
  Conn b = connect_ok(relay.conninfo());
  // About 6.4e10 combinations and no function call (a plain read): it runs until cancelled.
  REQUIRE(PQsendQuery(a.get(), "select x.g from lane_slow x, lane_slow y, lane_slow z where x.g + y.g + z.g < 0") == 1);
  REQUIRE(eventually([&] { return metric(metrics_port, "pgrelay_pipelined_statements_total") >= 1; }));
  std::this_thread::sleep_for(200ms);
  // Another client's reads meanwhile are answered (another connection: the slow one takes none).
  CHECK(scalar(b.get(), "select 7 as seven") == "7");
  PGcancel* cancel = PQgetCancel(a.get());
  char err[256];
  CHECK(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  REQUIRE(wait_readable(a.get(), 5s));
  Result r(PQgetResult(a.get()));
  REQUIRE(r != nullptr);
  CHECK(PQresultStatus(r.get()) == PGRES_FATAL_ERROR);
  const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
  CHECK(std::string(state ? state : "") == "57014");
  while (Result more{PQgetResult(a.get())}) {}
  // The server stopped it too (its connection is retired, never given to another client).
  CHECK(eventually([&] {
    return scalar(direct.get(), "select count(*) from pg_stat_activity where query like '%lane_slow x%' "
                                "and state = 'active' and pid <> pg_backend_pid()") == "0";
  }));
  CHECK(metric(metrics_port, "pgrelay_pipeline_cancels_total") == 1);
  // Both clients go on.
  CHECK(scalar(a.get(), "select 8 as eight") == "8");
  CHECK(scalar(b.get(), "select 9 as nine") == "9");
  REQUIRE(exec(direct.get(), "drop table lane_slow").ok());
}

TEST_CASE("lane connections terminated under load: the reads are answered elsewhere, no client sees an error") {
  const int metrics_port = free_port();
  // Every read must go down a lane: one sent the ordinary way (a lane's head running past
  // pipeline_max_wait on a loaded machine, or its queue full) has a connection of its own, and
  // a terminated backend ends that client as it would without pipelining. So: no wait bound to
  // speak of, deep queues, and a pool with room for every lane connection (2 workers x 2).
  PgrelayProcess relay(pipelined(8, metrics_port).set("pipeline_max_wait", "\"10s\"").set("pipeline_depth", "1024"));
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, answered{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      Conn c = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_kill"));
      for (int i = 0; !stop; ++i) {
        const std::string n = std::to_string(t * 1000000 + i);
        auto r = exec(c.get(), "select " + n + " as n");
        if (!r.ok() || r.rows.size() != 1 || r.rows[0].at(0) != n) {
          ++errors;
          MESSAGE("client ", t, ": ", r.sqlstate, " ", r.message);
        } else {
          ++answered;
        }
      }
    });
  }
  Conn direct = connect_ok(direct_conninfo());
  int terminated = 0;
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(300ms);
    // pgrelay's server connections of this test: every one of them carries lanes only.
    terminated += std::stoi(scalar(direct.get(),
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'lane_kill' "
        "and query like 'select % as n') t"));
  }
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (auto& t : clients) t.join();
  CHECK(terminated > 0);
  CHECK(errors == 0);
  CHECK(answered > 1000);
}
