// Fault injection on the server side: PostgreSQL killed (SIGKILL), stopped (-m fast) and a
// backend terminated mid-COPY under load, and a server that stops answering without closing
// (FaultRelay), on the ordinary path and in a pipelining lane. After each, no client has hung, the ledger holds exactly what its clients were
// told committed, TPC-B's balances agree, and the pool serves again.
//
// The PostgreSQL here is the file's own (TempCluster): killing the shared one would fail the
// other tests.
#include <doctest/doctest.h>

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <future>
#include <thread>

#include "fault_load.h"
#include "fault_relay.h"
#include "harness.h"
#include "ledger.h"
#include "temp_cluster.h"

using namespace pgrelay::it;

namespace {

using Clock = std::chrono::steady_clock;

TempCluster& cluster() {
  static TempCluster c("fault-server");
  return c;
}

// Transaction pooling in front of the file's cluster, as "faultdb"; clients wait out a restart.
RelayConfig relay_config(int server_port) {
  RelayConfig cfg;
  cfg.without_databases().pool("transaction", 6);
  cfg.set("max_client_conn", "500").set("server_login_retry", "\"15s\"").set("query_wait_timeout", "\"20s\"");
  cfg.add_database("faultdb", "host = \"127.0.0.1\"\nport = " + std::to_string(server_port) + "\ndbname = \"postgres\"\n");
  return cfg;
}

// The same in `mode` on a pool of 2, with the query cache on: the pump reads catalog facts
// between a client's transactions (a query of pgrelay's own).
RelayConfig caching_config(int server_port, const char* mode) {
  RelayConfig cfg = relay_config(server_port);
  cfg.pool(mode, 2);
  cfg.databases += "\n[cache]\nenabled = true\n";
  return cfg;
}

// A transaction on `c` that writes `table`, whose COMMIT makes the pump read catalog facts;
// that query (it alone runs under a lock_timeout of its own) goes into the silence.
void commit_then_silence(PGconn* c, FaultRelay& net, const std::string& table) {
  REQUIRE(exec(c, "BEGIN").ok());
  REQUIRE(exec(c, "INSERT INTO " + table + " VALUES (1)").ok());
  net.silence_on("lock_timeout");
  REQUIRE(exec(c, "COMMIT").ok());
}

void report(const LedgerCheck& c, const Ledger& ledger) {
  MESSAGE("ledger: " << c.describe() << "; " << ledger.errors().size() << " errors seen by its writers");
  CHECK_MESSAGE(c.ok(), c.describe());
  CHECK(c.committed > 0);
}

// Load through `relay` for `total`, with `fault` run at `at` (it returns when the server is back);
// then the checks every restart scenario shares.
template <class Fault>
void restart_under_load(Fault fault) {
  TempCluster& pg = cluster();
  pgbench_init(pg.port());
  PgrelayProcess relay(relay_config(pg.port()));
  Ledger ledger(pg.conninfo());
  ledger.start(relay.conninfo("faultdb"), 4);
  PgbenchLoop bench(relay.port(), "faultdb", 4, 9s);

  std::this_thread::sleep_for(2s);
  const long before = ledger.committed();
  auto faulted = Clock::now();
  fault(pg);
  auto back = Clock::now();
  MESSAGE("server back after " << std::chrono::duration_cast<Millis>(back - faulted).count() << " ms");
  // The pool recovers: new transactions commit once the server is back.
  std::this_thread::sleep_for(3s);
  const long after_restart = ledger.committed();
  std::this_thread::sleep_for(2s);
  bench.join();
  ledger.stop();

  CHECK(before > 0);
  CHECK_MESSAGE(ledger.committed() > after_restart, "no transaction committed in the 2 s after recovery");
  CHECK(bench.hung_runs() == 0);
  CHECK_MESSAGE(bench.transactions() > 0, bench.last_output());
  MESSAGE("pgbench: " << bench.runs() << " runs, " << bench.transactions() << " transactions");
  CHECK_MESSAGE(tpcb_imbalance(pg.conninfo()).empty(), tpcb_imbalance(pg.conninfo()));
  report(ledger.check(), ledger);
  // Errors only around the fault: none once the server had been back a second.
  for (const auto& e : ledger.errors()) {
    CHECK_MESSAGE(e.at < back + 1s, e.step << " failed " << std::chrono::duration_cast<Millis>(e.at - back).count()
                                           << " ms after the server was back: " << e.sqlstate << " " << e.message);
  }
  CHECK(relay.running());
}

// The TCP options of one of pgrelay's sockets, read through a copy of its descriptor
// (pidfd_getfd: the test runs as root, or as pgrelay's parent under Yama).
struct SocketOptions {
  int keepalive = -1, keepidle = -1, keepintvl = -1, keepcnt = -1, user_timeout = -1;
};
int port_of(const sockaddr_storage& a) {
  return a.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port)
                                : ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
}
// pgrelay's TCP socket whose peer has port `peer_port`, if any.
std::optional<SocketOptions> options_of_peer(pid_t pid, int peer_port) {
  const int pidfd = int(::syscall(SYS_pidfd_open, pid, 0));
  REQUIRE_MESSAGE(pidfd >= 0, "pidfd_open: " << std::strerror(errno));
  std::optional<SocketOptions> found;
  DIR* dir = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  REQUIRE(dir);
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.' || found) continue;
    const int fd = int(::syscall(SYS_pidfd_getfd, pidfd, std::atoi(e->d_name), 0));
    if (fd < 0) continue;
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
        (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) && port_of(peer) == peer_port) {
      SocketOptions o;
      socklen_t n = sizeof(int);
      ::getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &o.keepalive, &n);
      ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &o.keepidle, &n);
      ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &o.keepintvl, &n);
      ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &o.keepcnt, &n);
      ::getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &o.user_timeout, &n);
      found = o;
    }
    ::close(fd);
  }
  ::closedir(dir);
  ::close(pidfd);
  return found;
}
int local_port(PGconn* c) {
  sockaddr_storage self{};
  socklen_t len = sizeof self;
  REQUIRE(::getsockname(PQsocket(c), reinterpret_cast<sockaddr*>(&self), &len) == 0);
  return port_of(self);
}

}  // namespace

TEST_CASE("PostgreSQL killed with SIGKILL under load, then restarted") {
  restart_under_load([](TempCluster& pg) {
    pg.kill9();
    std::this_thread::sleep_for(1s);
    pg.start();
  });
}

TEST_CASE("PostgreSQL stopped with -m fast under load, then restarted") {
  restart_under_load([](TempCluster& pg) {
    pg.stop_fast();
    std::this_thread::sleep_for(1s);
    pg.start();
  });
}

TEST_CASE("a server backend terminated mid-COPY: that COPY fails whole, other clients are untouched") {
  TempCluster& pg = cluster();
  PgrelayProcess relay(relay_config(pg.port()));
  Ledger ledger(pg.conninfo());
  ledger.start(relay.conninfo("faultdb"), 3);

  Conn copier = connect_ok(relay.conninfo("faultdb", "postgres", "application_name=copier"));
  auto begun = exec(copier.get(), "copy " + ledger.table() + " from stdin");
  REQUIRE(begun.status == PGRES_COPY_IN);
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    std::this_thread::sleep_for(500ms);
    Conn d = connect_ok(pg.conninfo());
    killed = scalar(d.get(), "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity "
                             "where application_name = 'copier' or query like 'copy %') t") != "0";
  });
  // Rows until the server's death reaches the client (or 60 s: a hang), then the end of the COPY.
  std::vector<long> sent;
  auto deadline = Clock::now() + 60s;
  bool put_failed = false;
  while (Clock::now() < deadline) {
    std::string chunk;
    for (int i = 0; i < 1000; ++i) {
      long id = ledger.next_id();
      sent.push_back(id);
      ledger.record(id, 1, Outcome::kFailed);   // the COPY must fail whole
      chunk += std::to_string(id) + "\t-1\t1\n";
    }
    if (PQputCopyData(copier.get(), chunk.data(), int(chunk.size())) != 1) {
      put_failed = true;
      break;
    }
    if (killed && sent.size() > 2'000'000) break;
    PQconsumeInput(copier.get());
    if (PQstatus(copier.get()) != CONNECTION_OK) break;
    if (killed) {
      // The error may be waiting already: PQputCopyEnd then reads it.
      if (wait_readable(copier.get(), 10ms)) break;
    }
  }
  killer.join();
  REQUIRE(killed);
  CHECK(Clock::now() < deadline);
  if (!put_failed) PQputCopyEnd(copier.get(), nullptr);
  bool got_error = false;
  auto end_by = Clock::now() + 10s;
  while (Clock::now() < end_by) {
    if (PQisBusy(copier.get()) && !wait_readable(copier.get(), 1s)) continue;
    PQconsumeInput(copier.get());
    PGresult* r = PQgetResult(copier.get());
    if (r == nullptr) break;
    if (PQresultStatus(r) == PGRES_FATAL_ERROR) got_error = true;
    PQclear(r);
    if (PQstatus(copier.get()) != CONNECTION_OK) break;
  }
  CHECK(got_error);
  MESSAGE(sent.size() << " rows sent into the COPY before its server died");

  std::this_thread::sleep_for(500ms);
  ledger.stop();
  report(ledger.check(), ledger);
  CHECK_MESSAGE(ledger.errors().empty(), first_error(ledger.errors()));
  Conn fresh = connect_ok(relay.conninfo("faultdb"));
  CHECK(scalar(fresh.get(), "select 1") == "1");
}

TEST_CASE("a server that stops answering without closing: query_timeout errors its clients, the pool recovers") {
  TempCluster& pg = cluster();
  FaultRelay net(pg.port());
  RelayConfig cfg = relay_config(net.port());
  cfg.pool("transaction", 3);
  cfg.set("query_timeout", "\"1s\"").set("server_connect_timeout", "\"2s\"").set("server_login_retry", "\"0\"")
      .set("query_wait_timeout", "\"5s\"");
  PgrelayProcess relay(cfg);
  Ledger ledger(pg.conninfo());
  ledger.start(relay.conninfo("faultdb"), 3, /*deadline=*/15s);
  std::this_thread::sleep_for(1s);
  REQUIRE(ledger.committed() > 0);

  // Silence: the transactions in flight and the idle pooled connections are all cut off.
  net.blackhole();
  auto silenced = Clock::now();
  Conn probe = connect(relay.conninfo("faultdb"));
  bool hung = false;
  QueryResult r = PQstatus(probe.get()) == CONNECTION_OK ? exec_deadline(probe.get(), "select 1", 15s, hung)
                                                         : QueryResult{};
  auto answered = Clock::now() - silenced;
  CHECK_FALSE(hung);
  CHECK_FALSE(r.ok());
  MESSAGE("a query into the silence failed after " << std::chrono::duration_cast<Millis>(answered).count()
                                                  << " ms: " << r.sqlstate << " " << r.message);
  CHECK(answered < 8s);   // query_timeout (1 s), a cancel that goes nowhere, query_timeout again
  std::this_thread::sleep_for(3s);
  const long during = ledger.committed();

  net.heal();
  auto healed = Clock::now();
  std::this_thread::sleep_for(6s);
  ledger.stop();
  CHECK_MESSAGE(ledger.committed() > during + 10, "the pool did not recover after the network healed");
  report(ledger.check(), ledger);
  for (const auto& e : ledger.errors()) {
    CHECK_MESSAGE(e.at < healed + 4s, e.step << " failed " << std::chrono::duration_cast<Millis>(e.at - healed).count()
                                             << " ms after the network healed: " << e.message);
  }
  Conn fresh = connect_ok(relay.conninfo("faultdb"));
  CHECK(scalar(fresh.get(), "select 1") == "1");
  CHECK(relay.running());
}

TEST_CASE("pipelined: a read into the silence gets 57014 at query_timeout; its silent lane connection is closed") {
  TempCluster& pg = cluster();
  FaultRelay net(pg.port());
  RelayConfig cfg = relay_config(net.port());
  cfg.pool("transaction", 3);
  cfg.set("pipelining", "true").set("query_timeout", "\"500ms\"");
  PgrelayProcess relay(cfg);
  Conn c = connect_ok(relay.conninfo("faultdb"));
  REQUIRE(scalar(c.get(), "select 1 as one") == "1");   // a lane connection (or an idle one) is open
  net.blackhole();
  const auto sent = Clock::now();
  bool hung = false;
  QueryResult r = exec_deadline(c.get(), "select 2 as two", 10s, hung);
  const auto answered = Clock::now() - sent;
  CHECK_FALSE(hung);
  // The lane answers for the server at the timeout, as PostgreSQL answers a cancel.
  CHECK(r.sqlstate == "57014");
  CHECK(answered < 2s);
  // The connection answered neither the statement nor its cancel for a further query_timeout.
  const auto until = Clock::now() + 5s;
  while (relay.log().find("nothing read within query_timeout") == std::string::npos && Clock::now() < until)
    std::this_thread::sleep_for(50ms);
  CHECK(relay.log().find("nothing read within query_timeout") != std::string::npos);
  CHECK(relay.running());
}

TEST_CASE("a query of pgrelay's own the server never answers costs its connection, not the client") {
  // Between a client's transactions the pump reads the cache's catalog facts on the client's
  // connection. The client's next request once waited for that query, then found its connection
  // closed after 5 s (or, with no facts wanted of its own, waited for ever). Now the query is
  // given up after 5 s and the request goes on another connection.
  TempCluster& pg = cluster();
  {
    Conn d = connect_ok(pg.conninfo());
    REQUIRE(exec(d.get(), "DROP TABLE IF EXISTS own_w1, own_w2, own_r; CREATE TABLE own_w1 (x int); "
                          "CREATE TABLE own_w2 (x int); CREATE TABLE own_r (y int); INSERT INTO own_r VALUES (7)").ok());
  }
  FaultRelay net(pg.port());
  PgrelayProcess relay(caching_config(net.port(), "transaction"));
  Conn c = connect_ok(relay.conninfo("faultdb"));
  // 1. The next request wants facts of its own (a cacheable read of another table).
  commit_then_silence(c.get(), net, "own_w1");
  auto sent = Clock::now();
  bool hung = false;
  QueryResult r = exec_deadline(c.get(), "SELECT y FROM own_r", 15s, hung);
  CHECK_FALSE(hung);
  CHECK_MESSAGE(r.ok(), r.message);
  CHECK(r.rows.size() == 1);
  if (r.rows.size() == 1) CHECK(r.rows[0].at(0) == "7");
  CHECK(net.reset_done());
  CHECK(Clock::now() - sent < 8s);
  // 2. The next request wants no facts: it waited for the silent query without a bound.
  commit_then_silence(c.get(), net, "own_w2");
  sent = Clock::now();
  r = exec_deadline(c.get(), "SELECT 40 + 2", 15s, hung);
  CHECK_FALSE(hung);
  CHECK_MESSAGE(r.ok(), r.message);
  if (r.rows.size() == 1) CHECK(r.rows[0].at(0) == "42");
  CHECK(net.reset_done());
  CHECK(Clock::now() - sent < 8s);
  // The session goes on, and both writes are there.
  CHECK(scalar(c.get(), "SELECT (SELECT count(*) FROM own_w1) + (SELECT count(*) FROM own_w2)") == "2");
  CHECK(relay.log().find("did not answer a query of pgrelay's own") != std::string::npos);
  CHECK(relay.running());
}

TEST_CASE("session mode: a query of pgrelay's own the server never answers ends the session with 08006, not silently") {
  // The session's connection is the client's for good: lost, nothing can take its place, and
  // the client hears why (it once found the connection closed without a word).
  TempCluster& pg = cluster();
  {
    Conn d = connect_ok(pg.conninfo());
    REQUIRE(exec(d.get(), "DROP TABLE IF EXISTS own_s1, own_sr; CREATE TABLE own_s1 (x int); "
                          "CREATE TABLE own_sr (y int); INSERT INTO own_sr VALUES (7)").ok());
  }
  FaultRelay net(pg.port());
  PgrelayProcess relay(caching_config(net.port(), "session"));
  Conn c = connect_ok(relay.conninfo("faultdb"));
  commit_then_silence(c.get(), net, "own_s1");
  const auto sent = Clock::now();
  bool hung = false;
  QueryResult r = exec_deadline(c.get(), "SELECT y FROM own_sr", 15s, hung);
  CHECK_FALSE(hung);
  CHECK(net.reset_done());
  CHECK_FALSE(r.ok());
  CHECK_MESSAGE(r.sqlstate == "08006", r.sqlstate << " " << r.message);
  CHECK(Clock::now() - sent < 8s);
  // Another client is served.
  Conn other = connect_ok(relay.conninfo("faultdb"));
  CHECK(scalar(other.get(), "SELECT y FROM own_sr") == "7");
  CHECK(relay.running());
}

TEST_CASE("tcp_keepalive settings reach pgrelay's client and server sockets") {
  TempCluster& pg = cluster();
  RelayConfig cfg = relay_config(pg.port());
  cfg.set("tcp_keepidle", "\"7s\"").set("tcp_keepintvl", "\"3s\"").set("tcp_keepcnt", "4")
      .set("tcp_user_timeout", "\"9s\"");
  PgrelayProcess relay(cfg);
  Conn c = connect_ok(relay.conninfo("faultdb"));
  REQUIRE(scalar(c.get(), "select 1") == "1");   // a server connection is open now (idle in the pool)
  for (int peer : {local_port(c.get()), pg.port()}) {
    CAPTURE(peer);
    auto o = options_of_peer(relay.pid(), peer);
    REQUIRE(o);
    CHECK(o->keepalive == 1);
    CHECK(o->keepidle == 7);
    CHECK(o->keepintvl == 3);
    CHECK(o->keepcnt == 4);
    CHECK(o->user_timeout == 9000);
  }

  cfg.set("tcp_keepalive", "false").set("tcp_user_timeout", "0");
  PgrelayProcess off(cfg);
  Conn d = connect_ok(off.conninfo("faultdb"));
  REQUIRE(scalar(d.get(), "select 1") == "1");
  for (int peer : {local_port(d.get()), pg.port()}) {
    CAPTURE(peer);
    auto o = options_of_peer(off.pid(), peer);
    REQUIRE(o);
    CHECK(o->keepalive == 0);
    CHECK(o->user_timeout == 0);
  }
}
