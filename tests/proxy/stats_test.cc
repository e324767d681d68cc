// Counters and histograms (stats.h), the PAUSE gate, and their Prometheus mapping, without sockets.
#include <doctest/doctest.h>

#include <prometheus/registry.h>

#include "proxy/pool/database_gate.h"
#include "proxy/metrics/analyzer_metrics.h"
#include "proxy/metrics/metrics_families.h"
#include "proxy/session/services.h"
#include "proxy/base/stats.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
using namespace std::chrono_literals;

namespace {
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("LatencyHistogram: buckets are upper bounds (le), +Inf takes the rest, sum in ns") {
  LatencyHistogram h;
  h.observe(50us);     // <= 100 µs
  h.observe(100us);    // le 0.0001 holds exactly 100 µs
  h.observe(101us);    // next bucket (250 µs)
  h.observe(3s);       // le 5
  h.observe(20s);      // +Inf
  h.observe(-5ms);     // clock weirdness counts as 0
  const auto s = h.snapshot();
  CHECK(s.count == 6);
  CHECK(s.counts[0] == 3);
  CHECK(s.counts[1] == 1);
  CHECK(s.counts[14] == 1);
  CHECK(s.counts[16] == 1);
  CHECK(s.sum_ns == uint64_t((50us + 100us + 101us + 3s + 20s).count() * 1000));
  CHECK(s.sum_seconds() == doctest::Approx(23.000251));
}

TEST_CASE("LatencyHistogram::quantile interpolates inside the bucket, as histogram_quantile()") {
  LatencyHistogram empty;
  CHECK(empty.snapshot().quantile(0.5) == 0);
  LatencyHistogram h;
  for (int i = 0; i < 100; ++i) h.observe(2ms);   // all in (1 ms, 2.5 ms]
  const auto s = h.snapshot();
  CHECK(s.quantile(0.5) == doctest::Approx(0.00175));
  CHECK(s.quantile(1.0) == doctest::Approx(0.0025));
  LatencyHistogram slow;
  slow.observe(30s);
  CHECK(slow.snapshot().quantile(0.99) == 10);   // +Inf reports the highest finite bound
  // The fast bounds resolve microseconds: 3 µs falls in (2.5 µs, 5 µs], not in the first bucket.
  LatencyHistogram fast(LatencyHistogram::kFastBounds);
  for (int i = 0; i < 10; ++i) fast.observe(3us);
  const auto f = fast.snapshot();
  CHECK(f.counts[2] == 10);
  CHECK(f.quantile(1.0) == doctest::Approx(0.000005));
  fast.observe(1s);
  CHECK(fast.snapshot().quantile(1.0) == doctest::Approx(0.1));
}

TEST_CASE("SessionMeter: queries, transactions, pipelining, bytes and the pool's client count") {
  auto pool = std::make_shared<PoolCounters>("db", "u");
  {
    SessionMeter m;
    m.bind(pool);
    CHECK(pool->clients == 1);
    m.on_request(20, 1);
    m.on_ready_for_query('I');          // an autocommit statement: one query, one transaction
    m.on_request(10, 1);                // BEGIN
    m.on_ready_for_query('T');
    m.on_request(10, 1);                // COMMIT
    m.on_ready_for_query('I');
    m.on_request(30, 2);                // two pipelined autocommit statements
    m.on_ready_for_query('I');
    m.on_ready_for_query('I');
    m.on_ready_for_query('I');          // not an answer to anything: ignored
    m.on_reply(100);
    const PoolTotals t = pool->totals();
    CHECK(t.queries == 5);
    CHECK(t.transactions == 4);
    CHECK(t.received == 70);
    CHECK(t.sent == 100);
    {
      auto w = m.waiting();
      CHECK(m.is_waiting());
    }
    CHECK_FALSE(m.is_waiting());
  }
  CHECK(pool->clients == 0);   // the session ended
}

TEST_CASE("PoolCountersRegistry: one set per (database, user), period totals for averages") {
  PoolCountersRegistry r;
  auto a = r.get("db", "u");
  CHECK(a == r.get("db", "u"));
  CHECK(a != r.get("db", "v"));
  CHECK(r.all().size() == 2);
  a->bytes_sent += 500;
  const auto t0 = std::chrono::steady_clock::now();
  r.roll_period(t0 + 30s, 60s);   // not yet
  CHECK(r.last_period(*a).seconds == 0);
  r.roll_period(t0 + 61s, 60s);
  auto p = r.last_period(*a);
  CHECK(p.seconds > 60);
  CHECK(p.end.sent == 500);
  CHECK(p.start.sent == 0);
}

TEST_CASE("reject reasons by SQLSTATE") {
  CHECK(reject_reason_for("53300") == RejectReason::kTooManyConnections);
  CHECK(reject_reason_for("28P01") == RejectReason::kAuthFailed);
  CHECK(reject_reason_for("42501") == RejectReason::kNotAdmin);
  CHECK(reject_reason_for("08006") == RejectReason::kServerUnavailable);
  CHECK(reject_reason_for("XX000") == RejectReason::kOther);
  CHECK(std::string(to_string(RejectReason::kUnknownDatabase)) == "unknown_database");
}

TEST_CASE("DatabaseGate: pause, resume, suspend, disable") {
  DatabaseGate g;
  CHECK_FALSE(g.paused("a"));
  g.pause("a");
  CHECK(g.paused("a"));
  CHECK_FALSE(g.paused("b"));
  CHECK_FALSE(g.resume("b"));
  CHECK(g.resume("a"));
  CHECK_FALSE(g.paused("a"));
  g.pause("");
  CHECK(g.paused("b"));
  CHECK(g.globally_paused());
  CHECK(g.resume(""));
  g.suspend();
  CHECK(g.paused("x"));
  CHECK(g.suspended());
  CHECK(g.resume(""));
  CHECK_FALSE(g.suspended());
  g.disable("a");
  CHECK(g.disabled("a"));
  CHECK(g.enable("a"));
  CHECK_FALSE(g.enable("a"));
}

TEST_CASE("DatabaseGate::wait_open: a paused client waits for RESUME, or times out") {
  asio::io_context io;
  DatabaseGate g;
  g.pause("db");
  std::optional<bool> first, second;
  asio::co_spawn(io, [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    const std::string db = "db", user = "u";
    first = co_await g.wait_open(db, user, ex, std::chrono::steady_clock::now() + 5s);
  }, asio::detached);
  asio::co_spawn(io, [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    const std::string db = "db", user = "v";
    second = co_await g.wait_open(db, user, ex, std::chrono::steady_clock::now() + 50ms);
  }, asio::detached);
  io.run_for(200ms);
  CHECK(second == false);          // timed out
  CHECK_FALSE(first.has_value());  // still waiting
  CHECK(g.waiting("db", "u").clients == 1);
  CHECK(g.resume("db"));
  io.restart();
  io.run_for(200ms);
  CHECK(first == true);
  CHECK(g.waiting("db", "u").clients == 0);
}

TEST_CASE("MetricsFamilies: every family is exported, pool series carry database and user") {
  Services services(std::make_shared<const conf::Config>());
  auto counters = services.pools.counters().get("appdb", "app");
  counters->query_seconds.observe(2ms);
  counters->bytes_received += 42;
  services.stats.on_login_refused("53300");
  prometheus::Registry registry;
  MetricsFamilies families(registry);
  families.update(services);
  counters->bytes_received += 8;
  families.update(services);   // increments by what changed
  std::string text;
  for (const auto& f : registry.Collect()) {
    text += f.name + "\n";
    for (const auto& m : f.metric) {
      std::string labels;
      for (const auto& l : m.label) labels += l.name + "=" + l.value + ",";
      text += "  " + labels + " " + std::to_string(m.counter.value) + "\n";
    }
  }
  for (const char* name : {"pgrelay_pool_clients_active", "pgrelay_pool_clients_waiting", "pgrelay_pool_servers_active",
                           "pgrelay_pool_servers_idle", "pgrelay_pool_servers_used", "pgrelay_pool_servers_login",
                           "pgrelay_pool_servers_pinned", "pgrelay_session_state_refusals_total",
                           "pgrelay_pool_target_size", "pgrelay_pool_configured_size", "pgrelay_pool_max_wait_seconds",
                           "pgrelay_pool_paused", "pgrelay_queries_total", "pgrelay_transactions_total",
                           "pgrelay_client_bytes_received_total", "pgrelay_client_bytes_sent_total",
                           "pgrelay_server_connections_opened_total", "pgrelay_server_connections_closed_total",
                           "pgrelay_server_connections_failed_total", "pgrelay_pool_scale_ups_total",
                           "pgrelay_pool_scale_downs_total", "pgrelay_query_duration_seconds",
                           "pgrelay_transaction_duration_seconds", "pgrelay_client_wait_seconds",
                           "pgrelay_client_connections", "pgrelay_client_connections_accepted_total",
                           "pgrelay_client_connections_rejected_total", "pgrelay_client_auth_successes_total",
                           "pgrelay_client_auth_failures_total", "pgrelay_client_auth_rejected_total",
                           "pgrelay_admin_console_sessions_total", "pgrelay_cancel_requests_total", "pgrelay_info",
                           "pgrelay_start_time_seconds"})
    CHECK_MESSAGE(contains(text, std::string(name) + "\n"), name);
  CHECK(contains(text, "database=appdb,user=app, 50.0"));            // bytes received: 42 then 8 more
  CHECK(contains(text, "reason=too_many_connections, 1.0"));
}

TEST_CASE("AnalyzerMetrics: totals, and series for the top fingerprints only, removed when they leave the top") {
  Services services(std::make_shared<const conf::Config>());
  auto record = [&](uint64_t fingerprint, uint64_t micros, std::string_view sqlstate = {}) {
    services.query_stats.shard(0).record({.fingerprint = fingerprint, .database = "db", .user = "u",
                                          .normalized = "select ?", .rows = 1, .sqlstate = sqlstate,
                                          .duration_micros = micros, .now_unix_micros = 1});
  };
  record(1, 3'000'000);
  record(2, 2'000'000, "23505");
  record(3, 1'000);
  prometheus::Registry registry;
  AnalyzerMetrics metrics(registry);
  metrics.update(services, 2);
  auto render = [&] {
    std::string text;
    for (const auto& f : registry.Collect())
      for (const auto& m : f.metric) {
        std::string labels;
        for (const auto& l : m.label) labels += l.name + "=" + l.value + ",";
        text += f.name + "{" + labels + "} " + std::to_string(m.counter.value) + " " + std::to_string(m.gauge.value) + "\n";
      }
    return text;
  };
  std::string text = render();
  CHECK(contains(text, "pgrelay_statements_total{} 3.0"));
  CHECK(contains(text, "pgrelay_statement_errors_total{} 1.0"));
  CHECK(contains(text, "pgrelay_query_seconds_total{database=db,fingerprint=0000000000000001,user=u,} 3.0"));
  CHECK(contains(text, "pgrelay_query_errors_total{database=db,fingerprint=0000000000000002,user=u,} 1.0"));
  CHECK(contains(text, "pgrelay_query_info{database=db,fingerprint=0000000000000001,query=select ?,user=u,}"));
  CHECK_FALSE(contains(text, "fingerprint=0000000000000003"));   // not in the top 2
  // Fingerprint 3 overtakes 2: 2's series go, 3's appear.
  record(3, 5'000'000);
  metrics.update(services, 2);
  text = render();
  CHECK(contains(text, "fingerprint=0000000000000003"));
  CHECK_FALSE(contains(text, "fingerprint=0000000000000002"));
  CHECK(contains(text, "pgrelay_statements_total{} 4.0"));
}
