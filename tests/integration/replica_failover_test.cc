// A multi-host primary followed through a failover (docs/replicas.md): a primary and two
// streaming replicas of its own (tests/integration/replicas.sh, in a directory of its own, since
// the failover leaves no primary for other tests), the primary crashed and replica1 promoted
// while a client keeps writing through pgrelay; writes resume on the new primary without a
// restart, and the promoted replica leaves read rotation.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "harness.h"

using namespace pgrelay::it;
using namespace std::chrono_literals;

namespace {

std::string failover_dir() {
  const char* d = std::getenv("PGRELAY_REPLICAS_DIR");
  if (!d || !*d) throw std::runtime_error("PGRELAY_REPLICAS_DIR is not set (run the tests through ctest)");
  return std::string(d) + "-failover";
}

}  // namespace

TEST_CASE("a replica promoted and the old primary stopped: writes resume on the new primary without a restart") {
  // A set of its own (the shared fixture's primary must survive for the other tests).
  const std::string dir = failover_dir();
  const std::string source = PGRELAY_SOURCE_DIR;
  REQUIRE(run_command(source + "/tests/integration/replicas.sh setup " + shell_quote(dir), 180s).exit_code == 0);
  struct Cleanup {
    std::string cmd;
    ~Cleanup() { (void)run_command(cmd); }
  } cleanup{source + "/tests/integration/replicas.sh cleanup " + shell_quote(dir)};
  auto port = [&](const std::string& s) { return std::stoi(read_file(dir + "/" + s + "/port")); };
  const int primary = port("primary"), r1 = port("replica1"), r2 = port("replica2");
  RelayConfig c;
  c.without_databases().pool("transaction", 10).set("admin_users", "[\"postgres\"]");
  c.add_database("postgres", "host = \"127.0.0.1,127.0.0.1\"\nport = \"" + std::to_string(primary) + "," +
                                 std::to_string(r1) + "\"\nreplicas = [\"127.0.0.1:" + std::to_string(r1) +
                                 "\", \"127.0.0.1:" + std::to_string(r2) +
                                 "\"]\nread_routing = \"on\"\nreplica_check_interval = \"100ms\"\n");
  PgrelayProcess relay(c);
  const pid_t pid = relay.pid();

  // One client writes in a loop (a new connection after a failure, as applications do).
  using Clock = std::chrono::steady_clock;
  std::atomic<bool> stopping{false};
  std::atomic<long> last_written{0}, failures{0}, after_stop{0};
  std::atomic<Clock::rep> stopped_at{0}, resumed_at{0};
  std::thread writer([&] {
    Conn w = connect(relay.conninfo());
    for (long i = 1; !stopping; ++i) {
      if (!w || PQstatus(w.get()) != CONNECTION_OK) w = connect(relay.conninfo());
      const bool ok = w && exec_params(w.get(), "update rr_items set value = $1 where id = 1", {std::to_string(i)}).ok();
      if (!ok) {
        ++failures;
        w.reset();
        std::this_thread::sleep_for(10ms);
        continue;
      }
      last_written = i;
      const auto stop = stopped_at.load();
      if (stop != 0 && resumed_at.load() == 0) resumed_at = Clock::now().time_since_epoch().count();
      if (stop != 0) ++after_stop;
    }
  });
  std::this_thread::sleep_for(500ms);
  CHECK(last_written > 0);
  const std::string pg_temp = source + "/scripts/pg-temp";
  // Writes that the old primary took while it was shutting down count as before the stop.
  REQUIRE(run_command(pg_temp + " crash " + shell_quote(dir + "/primary")).exit_code == 0);
  stopped_at = Clock::now().time_since_epoch().count();
  Clock::time_point promoted;
  {
    Conn promote = connect_ok(conninfo(r1));
    REQUIRE(exec(promote.get(), "select pg_promote()").ok());   // waits until it is done
    promoted = Clock::now();
  }
  const auto deadline = Clock::now() + 30s;
  while (after_stop < 20 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  stopping = true;
  writer.join();
  REQUIRE(after_stop >= 20);
  const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration(resumed_at - stopped_at));
  const auto after_promotion = std::chrono::duration_cast<std::chrono::milliseconds>(
      Clock::time_point(Clock::duration(resumed_at.load())) - promoted);
  MESSAGE("failover: first write on the new primary ", gap.count(), " ms after the primary stopped, ",
          after_promotion.count(), " ms after pg_promote() returned (", failures.load(), " failed writes meanwhile)");
  CHECK(relay.running());
  CHECK(relay.pid() == pid);
  // The writes landed on the promoted replica; it left read rotation (no longer in recovery).
  Conn now_primary = connect_ok(conninfo(r1));
  CHECK(scalar(now_primary.get(), "select value from rr_items where id = 1") == std::to_string(last_written.load()));
  CHECK(scalar(now_primary.get(), "select pg_is_in_recovery()") == "f");
  const auto deadline2 = Clock::now() + 10s;
  std::string state;
  while (Clock::now() < deadline2) {
    auto admin = connect_ok(relay.conninfo("pgrelay"));
    auto rows = exec(admin.get(), "SHOW REPLICAS");
    REQUIRE(rows.ok());
    for (const auto& row : rows.rows)
      if (*row[1] == "127.0.0.1:" + std::to_string(r1)) state = *row[2];
    if (state == "down") break;
    std::this_thread::sleep_for(50ms);
  }
  CHECK(state == "down");
  // Reads still work (on replica2, or on the new primary).
  Conn reader = connect_ok(relay.conninfo());
  for (int i = 0; i < 20; ++i) CHECK(exec(reader.get(), "select value from rr_items where id = 2").ok());
}
