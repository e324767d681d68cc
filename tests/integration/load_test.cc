// Many clients at once: 200 concurrent libpq sessions, and pgbench in session mode; and an idle
// pgrelay after a busy one (busy polling stops).
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <barrier>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "harness.h"

using namespace pgrelay::it;

namespace {

constexpr int kClients = 200;
constexpr int kQueriesPerClient = 5;

struct Outcome {
  std::atomic<int> ok{0};
  std::mutex mu;
  std::vector<std::string> failures;
  void fail(const std::string& why) {
    std::lock_guard lock(mu);
    failures.push_back(why);
  }
};

// One client: log in, optionally wait until every client is logged in, run a few checked queries.
void run_client(const PgrelayProcess& relay, int id, std::barrier<>* all_connected, Outcome& out) {
  Conn c = connect(relay.conninfo());
  bool connected = PQstatus(c.get()) == CONNECTION_OK;
  if (all_connected) all_connected->arrive_and_wait();
  if (!connected) {
    out.fail("client " + std::to_string(id) + ": connect: " + PQerrorMessage(c.get()));
    return;
  }
  for (int i = 0; i < kQueriesPerClient; ++i) {
    std::string a = std::to_string(id), b = std::to_string(i);
    auto q = exec_params(c.get(), "select $1::int * 1000 + $2::int, pg_backend_pid()", {a, b});
    if (!q.ok() || q.rows.size() != 1 || q.rows[0][0] != std::to_string(id * 1000 + i)) {
      out.fail("client " + a + " query " + b + ": " + q.sqlstate + " " + q.message);
      return;
    }
  }
  out.ok++;
}

void run_clients(const PgrelayProcess& relay, bool all_at_once) {
  Outcome out;
  std::barrier<> all_connected(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back(run_client, std::cref(relay), i, all_at_once ? &all_connected : nullptr, std::ref(out));
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < out.failures.size() && i < 5; ++i) MESSAGE(out.failures[i]);
  CHECK(out.ok.load() == kClients);
  CHECK(out.failures.empty());
}

struct PgbenchStats {
  int exit_code = -1;
  long failed = -1;
  double tps = 0;
  std::string output;
};

PgbenchStats pgbench(int port, const std::string& args) {
  PgbenchStats s;
  auto r = run_command(std::string(PGRELAY_IT_PGBENCH) + " -h 127.0.0.1 -p " + std::to_string(port) +
                       " -U postgres " + args + " bench", 60s);
  s.exit_code = r.exit_code;
  s.output = r.output;
  std::smatch m;
  if (std::regex_search(r.output, m, std::regex(R"(number of failed transactions: (\d+))"))) s.failed = std::stol(m[1]);
  if (std::regex_search(r.output, m, std::regex(R"(tps = ([0-9.]+))"))) s.tps = std::stod(m[1]);
  return s;
}

// CPU time (user + system) process `pid` has used, in seconds; -1 when it is gone.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t comm_end = stat.rfind(')');   // the command name may hold spaces
  if (comm_end == std::string::npos) return -1;
  std::istringstream fields(stat.substr(comm_end + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {   // fields 14 and 15: utime, stime
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

}  // namespace

TEST_CASE("busy polling ends with the traffic: a pgrelay that was busy and is idle now spends no CPU") {
  RelayConfig cfg;
  cfg.set("busy_poll_us", "100");   // off by default
  PgrelayProcess relay(cfg);
  // One client, statements back to back: what busy polling is for (the worker polls between them).
  Conn c = connect_ok(relay.conninfo());
  const double start = cpu_seconds(relay.pid());
  for (int i = 0; i < 2000; ++i) REQUIRE(scalar(c.get(), "select 1") == "1");
  const double busy = cpu_seconds(relay.pid()) - start;
  // Then nothing for two seconds, the client still connected: each worker must be asleep.
  std::this_thread::sleep_for(200ms);
  const double quiet = cpu_seconds(relay.pid());
  std::this_thread::sleep_for(2s);
  const double idle = cpu_seconds(relay.pid()) - quiet;
  MESSAGE("pgrelay CPU: " << busy << " s for 2,000 statements, " << idle << " s in 2 s idle");
  REQUIRE(start >= 0);
  CHECK(idle < 0.1);   // a loop that kept polling would spend about 2 s
  CHECK(relay.running());
}

TEST_CASE("200 concurrent clients, each holding its own server connection") {
  RelayConfig cfg;
  cfg.set("pool_size", "250").set("max_client_conn", "300");
  PgrelayProcess relay(cfg);
  run_clients(relay, /*all_at_once=*/true);
  CHECK(relay.running());
}

TEST_CASE("200 concurrent clients sharing 20 server connections (clients wait)") {
  RelayConfig cfg;
  cfg.set("pool_size", "20").set("query_wait_timeout", "\"60s\"");
  PgrelayProcess relay(cfg);
  run_clients(relay, /*all_at_once=*/false);
  CHECK(relay.running());
  // pgrelay never opened more than pool_size server connections.
  Conn direct = connect_ok(direct_conninfo());
  CHECK(std::stoi(scalar(direct.get(), "select count(*) from pg_stat_activity where client_port is not null "
                                       "and pid <> pg_backend_pid() and datname = 'postgres'")) <= 21);
}

TEST_CASE("pgbench -S through pgrelay: no failed transactions") {
  RelayConfig cfg;
  cfg.set("pool_size", "40");
  PgrelayProcess relay(cfg);

  auto init = pgbench(relay.port(), "-i -s 2 -q");
  REQUIRE_MESSAGE(init.exit_code == 0, init.output);

  auto via = pgbench(relay.port(), "-c 32 -j 2 -T 5 -S");
  REQUIRE_MESSAGE(via.exit_code == 0, via.output);
  CHECK_MESSAGE(via.failed == 0, via.output);
  CHECK(via.tps > 0);

  auto direct = pgbench(cluster_port(), "-c 32 -j 2 -T 3 -S");
  MESSAGE("pgbench -S, 32 clients: pgrelay " << via.tps << " tps, direct " << direct.tps
                                             << " tps, ratio " << (direct.tps > 0 ? via.tps / direct.tps : 0));
  CHECK(relay.running());
}
