// Fault injection on pgrelay's own life: config reloads (SIGHUP) and SIGTERM under load. A
// reload fails no transaction; a SIGTERM fails only what shutdown itself ends, loses no
// committed transaction, and pgrelay is gone within shutdown_timeout.
#include <doctest/doctest.h>

#include <signal.h>

#include <thread>

#include "fault_load.h"
#include "harness.h"
#include "ledger.h"

using namespace pgrelay::it;

namespace {

using Clock = std::chrono::steady_clock;

RelayConfig loaded(int pool_size) {
  RelayConfig cfg;
  cfg.pool("transaction", pool_size).set("max_client_conn", "500").set("shutdown_timeout", "\"3s\"");
  return cfg;
}

}  // namespace

TEST_CASE("SIGHUP every 200 ms under load: no transaction fails, the ledger adds up") {
  PgrelayProcess relay(loaded(6));
  pgbench_init(cluster_port(), "bench");
  Ledger ledger(direct_conninfo(), "fault_reload_ledger");
  ledger.start(relay.conninfo(), 4, 20s);
  PgbenchLoop bench(relay.port(), "bench", 4, 6s);
  int reloads = 0;
  for (auto until = Clock::now() + 6s; Clock::now() < until; ++reloads) {
    // Settings that change the pools and the timeouts, back and forth.
    RelayConfig next = loaded(reloads % 2 == 0 ? 8 : 6);
    next.set("query_wait_timeout", reloads % 2 == 0 ? "\"11s\"" : "\"10s\"");
    next.set("server_idle_timeout", reloads % 2 == 0 ? "\"30s\"" : "\"60s\"");
    relay.write_config(next);
    relay.signal(SIGHUP);
    std::this_thread::sleep_for(200ms);
  }
  bench.join();
  ledger.stop();
  MESSAGE(reloads << " reloads; pgbench " << bench.transactions() << " transactions in " << bench.runs() << " runs");
  CHECK(bench.runs() == 1);
  CHECK_MESSAGE(bench.failed_runs() == 0, bench.last_output());
  CHECK(bench.last_output().find("number of failed transactions: 0") != std::string::npos);
  CHECK(tpcb_imbalance(direct_conninfo("bench")).empty());
  LedgerCheck c = ledger.check();
  MESSAGE("ledger: " << c.describe());
  CHECK_MESSAGE(c.ok(), c.describe());
  CHECK(c.failed + c.unknown == 0);
  auto errors = ledger.errors();
  CHECK_MESSAGE(errors.empty(), first_error(errors));
  CHECK(relay.log().find("reload") != std::string::npos);
  CHECK(relay.running());
}

TEST_CASE("SIGTERM under load: only shutdown fails transactions, none committed is lost, exit within shutdown_timeout") {
  PgrelayProcess relay(loaded(6));
  Ledger ledger(direct_conninfo(), "fault_term_ledger");
  ledger.start(relay.conninfo(), 6, 20s);
  std::this_thread::sleep_for(2s);
  REQUIRE(ledger.errors().empty());
  auto signalled = Clock::now();
  relay.signal(SIGTERM);
  auto code = relay.wait_exit(10s);
  auto took = Clock::now() - signalled;
  ledger.stop();
  REQUIRE_MESSAGE(code.has_value(), "pgrelay still running 10 s after SIGTERM");
  CHECK(*code == 0);
  MESSAGE("pgrelay exited " << std::chrono::duration_cast<Millis>(took).count() << " ms after SIGTERM (shutdown_timeout 3 s)");
  // Clients are disconnected in shutdown_timeout's last tenth; what is left is the workers' join
  // and the process's exit.
  CHECK(took < 3s + 500ms);
  LedgerCheck c = ledger.check();
  MESSAGE("ledger: " << c.describe());
  CHECK_MESSAGE(c.ok(), c.describe());
  int during = 0;
  for (const auto& e : ledger.errors()) {
    CHECK_MESSAGE(e.at >= signalled, "an error before the SIGTERM: " << e.step << ": " << e.message);
    if (e.step != "connect") ++during;
  }
  MESSAGE(during << " transactions failed by the shutdown (" << ledger.errors().size() << " errors with reconnects)");
}
