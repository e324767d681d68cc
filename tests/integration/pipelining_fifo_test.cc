// A lane's FIFO (session/lane.h): when every connection a lane may hold is busy, a read waits
// there for the first connection that answers instead of taking the ordinary path; a read
// cancelled while it waits there is answered 57014 and never reaches the server.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "harness.h"
#include "pipelining_util.h"

using namespace pgrelay::it;

namespace {

// One worker, one lane connection with one statement on it at a time: every other read waits
// in the FIFO. No wait bound to speak of (a loaded machine must not turn reads away).
RelayConfig narrow_lane(int pool_size, int metrics_port) {
  return pipelined(pool_size, metrics_port)
      .set("workers", "1")
      .set("pipeline_connections", "1")
      .set("pipeline_depth", "1")
      .set("pipeline_max_wait", "\"10s\"");
}

}  // namespace

TEST_CASE("a lane at its limit: 10 clients' reads wait in its FIFO, each answered its own, none sent the ordinary way") {
  const int metrics_port = free_port();
  PgrelayProcess relay(narrow_lane(2, metrics_port));
  constexpr int kClients = 10, kRounds = 200;
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      Conn c = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_fifo"));
      for (int i = 0; i < kRounds; ++i) {
        const std::string n = std::to_string(t * 100000 + i);
        auto r = exec(c.get(), "select " + n + " as n, 'c" + std::to_string(t) + "' as who");
        if (!r.ok() || r.rows.size() != 1) {
          if (failed++ == 0) MESSAGE("client ", t, " round ", i, ": ", r.sqlstate, " ", r.message);
          continue;
        }
        if (r.rows[0].at(0) != n || r.rows[0].at(1) != "c" + std::to_string(t)) ++wrong;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(failed == 0);
  CHECK(wrong == 0);
  // Every read went down the lane, once: a read that fell back to the ordinary path would not
  // count here. (Which backends served the lane is not asked: on a loaded machine the lane may
  // give its connection back after a quiet 50 ms and bring one again, the pool's other one.)
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") == kClients * kRounds);
  CHECK(metric(metrics_port, "pgrelay_pipeline_retries_total") == 0);
}

TEST_CASE("a read cancelled while it waits in the FIFO gets 57014 at once; the running read is not touched") {
  const int metrics_port = free_port();
  PgrelayProcess relay(narrow_lane(2, metrics_port));
  Conn direct = connect_ok(direct_conninfo());
  REQUIRE(exec(direct.get(), "drop table if exists fifo_slow; create table fifo_slow as select g from generate_series(1, 4000) g").ok());
  Conn a = connect_ok(relay.conninfo("postgres", "postgres", "application_name=fifo_cancel"));
  Conn b = connect_ok(relay.conninfo("postgres", "postgres", "application_name=fifo_cancel"));
  // A plain read that runs until cancelled holds the lane's only connection.
  const std::string slow = "select x.g from fifo_slow x, fifo_slow y, fifo_slow z where x.g + y.g + z.g < 0";
  REQUIRE(PQsendQuery(a.get(), slow.c_str()) == 1);
  const std::string running = "select count(*) from pg_stat_activity where query like '%fifo_slow x%' and state = 'active' "
                              "and pid <> pg_backend_pid()";
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (scalar(direct.get(), running) != "1" && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(25ms);
  REQUIRE(scalar(direct.get(), running) == "1");
  // b's read waits behind it in the FIFO; b cancels.
  REQUIRE(PQsendQuery(b.get(), "select 5 as five") == 1);
  std::this_thread::sleep_for(300ms);
  CHECK(!wait_readable(b.get(), 0ms));   // still waiting: nothing answered it
  cancel_expecting_57014(b.get());
  // The read on the server was left alone: a's is still running, and a's connection was never
  // sent a cancel (b's read never reached it).
  CHECK(scalar(direct.get(), running) == "1");
  CHECK(metric(metrics_port, "pgrelay_pipeline_cancels_total") == 1);
  cancel_expecting_57014(a.get());
  // Both go on.
  CHECK(scalar(a.get(), "select 8 as eight") == "8");
  CHECK(scalar(b.get(), "select 9 as nine") == "9");
  REQUIRE(exec(direct.get(), "drop table fifo_slow").ok());
}

TEST_CASE("a lane that grew to its whole pool and shrank again gives every connection back") {
  // 24 clients on a pool of 4 that one lane may fill: the lane grows while its FIFO lags and its
  // sweep retires the connection with the fewest statements once the lag is over, over and over.
  // Retiring through a reference into the lane's own list once marked the wrong connection, and
  // the one taken out was held, idle, for good: the pool had one connection fewer each time,
  // and the reads behind it waited up to seconds (bench/README, twelfth round).
  const int metrics_port = free_port();
  PgrelayProcess relay(pipelined(4, metrics_port)
                           .set("workers", "1")
                           .set("pipeline_connections", "4")
                           .set("query_wait_timeout", "\"5s\"")   // a pool short of connections fails, not hangs
                           .set("admin_users", "[\"postgres\"]"));
  constexpr int kClients = 24;
  std::atomic<int> wrong{0}, failed{0};
  const auto until = std::chrono::steady_clock::now() + 3s;
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      Conn c = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_shrink"));
      for (int i = 0; std::chrono::steady_clock::now() < until; ++i) {
        const std::string n = std::to_string(t * 1000000 + i);
        auto r = exec(c.get(), "select " + n);
        if (!r.ok()) ++failed;
        else if (r.rows.size() != 1 || r.rows[0].at(0) != n) ++wrong;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(failed == 0);
  CHECK(wrong == 0);
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") > 0);
  // Quiet now: within a few sweep periods (50 ms) the lane holds nothing. SHOW POOLS counts lane
  // connections in sv_active.
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  auto lane_held = [&] {
    int active = 0;
    for (const auto& row : exec(admin.get(), "SHOW POOLS").rows)
      if (row.at(0) == "postgres" && row.at(1) == "postgres") active += std::stoi(row.at(6).value_or("0"));
    return active;
  };
  int held = lane_held();
  for (const auto deadline = std::chrono::steady_clock::now() + 5s; held != 0 && std::chrono::steady_clock::now() < deadline;
       held = lane_held())
    std::this_thread::sleep_for(50ms);
  CHECK_MESSAGE(held == 0, held << " server connections still held by the lane, with nothing to run");
  // And the pool serves all its connections again: four reads that each hold one at once.
  std::vector<Conn> holders;
  for (int i = 0; i < 4; ++i) {
    holders.push_back(connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_shrink")));
    REQUIRE(exec(holders.back().get(), "begin").ok());
  }
  for (auto& h : holders) CHECK(scalar(h.get(), "select 1") == "1");
  for (auto& h : holders) REQUIRE(exec(h.get(), "commit").ok());
}
