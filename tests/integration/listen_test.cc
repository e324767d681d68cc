// LISTEN/NOTIFY through transaction pooling: a client's LISTEN registers with pgrelay's one
// listening connection per database (no pin), and every notification reaches every listener,
// in order, with the sending backend's pid, as straight to PostgreSQL.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

using namespace pgrelay::it;

namespace {

RelayConfig pooled(int pool_size) {
  return RelayConfig().pool("transaction", pool_size).set("admin_users", "[\"postgres\"]");
}

struct Note {
  std::string channel, payload;
  int be_pid;
};

// The notifications that have arrived on `c`, waiting up to `timeout` for the first.
std::vector<Note> notes(PGconn* c, Millis timeout) {
  std::vector<Note> out;
  if (wait_readable(c, timeout)) PQconsumeInput(c);
  while (PGnotify* n = PQnotifies(c)) {
    out.push_back({n->relname, n->extra, n->be_pid});
    PQfreemem(n);
  }
  return out;
}

// SHOW LISTENERS: clients registered for `channel` (0 when it has no row).
int listeners(PGconn* admin, const std::string& channel) {
  auto r = exec(admin, "SHOW LISTENERS");
  REQUIRE(r.ok());
  for (const auto& row : r.rows)
    if (row.at(1) == channel) return std::stoi(*row.at(2));
  return 0;
}

}  // namespace

TEST_CASE("50 listening clients on a pool of 2 each receive all 1,000 notifications in order while running transactions") {
  PgrelayProcess relay(pooled(2));
  constexpr int kListeners = 50, kNotes = 1000;
  std::atomic<int> ready{0}, done{0};
  std::vector<int> received(kListeners, 0), out_of_order(kListeners, 0), wrong_pid(kListeners, 0), failures(kListeners, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kListeners; ++t) {
    threads.emplace_back([&, t] {
      Conn c = connect(relay.conninfo());
      if (PQstatus(c.get()) != CONNECTION_OK || !exec(c.get(), "LISTEN it_stream").ok()) {
        ++failures[t];
        ++ready;
        ++done;
        return;
      }
      ++ready;
      const auto deadline = std::chrono::steady_clock::now() + 90s;
      for (int round = 0; received[t] < kNotes && std::chrono::steady_clock::now() < deadline; ++round) {
        // Transactions of its own between notifications: each takes one of the 2 connections.
        if (round % 4 == t % 4) {
          if (!exec(c.get(), "begin").ok() || scalar(c.get(), "select 1") != "1" || !exec(c.get(), "commit").ok())
            ++failures[t];
        }
        for (const Note& n : notes(c.get(), 20ms)) {
          // Payload "i:pid": the i-th notification, sent by the backend with that pid.
          const auto colon = n.payload.find(':');
          if (n.channel != "it_stream" || colon == std::string::npos) {
            ++failures[t];
            continue;
          }
          if (std::stoi(n.payload.substr(0, colon)) != received[t]) ++out_of_order[t];
          if (std::stoi(n.payload.substr(colon + 1)) != n.be_pid) ++wrong_pid[t];
          ++received[t];
        }
      }
      ++done;
    });
  }
  // One more listener that leaves mid-stream: it must leave no registration behind.
  Conn leaver = connect_ok(relay.conninfo());
  REQUIRE(exec(leaver.get(), "LISTEN it_stream").ok());
  while (ready < kListeners) std::this_thread::sleep_for(10ms);
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  CHECK(listeners(admin.get(), "it_stream") == kListeners + 1);

  Conn sender = connect_ok(relay.conninfo());
  for (int i = 0; i < kNotes; ++i) {
    REQUIRE(exec(sender.get(), "select pg_notify('it_stream', '" + std::to_string(i) + ":' || pg_backend_pid())").ok());
    if (i == kNotes / 4) {
      CHECK(notes(leaver.get(), 1s).size() > 0);
      leaver.reset();
    }
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kListeners; ++t) {
    CAPTURE(t);
    CHECK(failures[t] == 0);
    CHECK(received[t] == kNotes);
    CHECK(out_of_order[t] == 0);
    CHECK(wrong_pid[t] == 0);
  }
  // No pins: the pool stayed at 2 server connections (the listening one is not the pool's).
  auto servers = exec(admin.get(), "SHOW SERVERS");
  REQUIRE(servers.ok());
  CHECK(servers.rows.size() <= 2);
  // Everyone gone (their sessions end a moment after the threads close them): no registration left.
  int left = listeners(admin.get(), "it_stream");
  for (int i = 0; i < 100 && left > 0; ++i) {
    std::this_thread::sleep_for(50ms);
    left = listeners(admin.get(), "it_stream");
  }
  CHECK(left == 0);
}

TEST_CASE("LISTEN semantics through transaction pooling match PostgreSQL's") {
  PgrelayProcess relay(pooled(1));
  Conn listener = connect_ok(relay.conninfo());
  Conn sender = connect_ok(relay.conninfo());
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  REQUIRE(exec(listener.get(), "LISTEN it_a").ok());
  // Extended protocol (psycopg 3, PQexecParams) and a quoted, case-kept name.
  REQUIRE(exec_params(listener.get(), "LISTEN \"It_B\"", {}).ok());
  CHECK(listeners(admin.get(), "it_a") == 1);
  CHECK(listeners(admin.get(), "It_B") == 1);

  SUBCASE("delivered at commit, dropped on rollback, with the sender's pid") {
    REQUIRE(exec(sender.get(), "begin").ok());
    const std::string pid = scalar(sender.get(), "select pg_backend_pid()");
    REQUIRE(exec(sender.get(), "notify it_a, 'rolled back'").ok());
    REQUIRE(exec(sender.get(), "rollback").ok());
    CHECK(notes(listener.get(), 300ms).empty());
    REQUIRE(exec(sender.get(), "begin").ok());
    const std::string pid2 = scalar(sender.get(), "select pg_backend_pid()");
    REQUIRE(exec(sender.get(), "notify it_a, 'one'; notify \"It_B\", 'two'").ok());
    CHECK(notes(listener.get(), 200ms).empty());   // not before the commit
    REQUIRE(exec(sender.get(), "commit").ok());
    auto got = notes(listener.get(), 2s);
    if (got.size() < 2) {
      auto more = notes(listener.get(), 1s);
      got.insert(got.end(), more.begin(), more.end());
    }
    REQUIRE(got.size() == 2);
    CHECK(got[0].channel == "it_a");
    CHECK(got[0].payload == "one");
    CHECK(std::to_string(got[0].be_pid) == pid2);
    CHECK(got[1].channel == "It_B");
    (void)pid;
  }
  SUBCASE("a listener inside its own transaction gets them after it ends, as PostgreSQL delivers") {
    REQUIRE(exec(listener.get(), "begin").ok());
    REQUIRE(scalar(listener.get(), "select 1") == "1");
    Conn sender2 = connect_ok(direct_conninfo());   // the pool's one connection is the listener's now
    REQUIRE(exec(sender2.get(), "notify it_a, 'while busy'").ok());
    CHECK(notes(listener.get(), 300ms).empty());
    REQUIRE(exec(listener.get(), "commit").ok());
    auto got = notes(listener.get(), 2s);
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "while busy");
  }
  SUBCASE("UNLISTEN and UNLISTEN * stop delivery and leave no registration") {
    REQUIRE(exec(listener.get(), "UNLISTEN it_a").ok());
    CHECK(listeners(admin.get(), "it_a") == 0);
    REQUIRE(exec(sender.get(), "notify it_a, 'x'; notify \"It_B\", 'y'").ok());
    auto got = notes(listener.get(), 2s);
    REQUIRE(got.size() == 1);
    CHECK(got[0].channel == "It_B");
    REQUIRE(exec(listener.get(), "UNLISTEN *").ok());
    CHECK(listeners(admin.get(), "It_B") == 0);
    REQUIRE(exec(sender.get(), "notify \"It_B\", 'z'").ok());
    CHECK(notes(listener.get(), 300ms).empty());
  }
  SUBCASE("LISTEN under session_state = \"reject\" is not refused: it no longer pins") {
    PgrelayProcess strict(RelayConfig().pool("transaction", 1).set("session_state", "\"reject\""));
    Conn c = connect_ok(strict.conninfo());
    CHECK(exec(c.get(), "LISTEN it_strict").ok());
    Conn s = connect_ok(strict.conninfo());
    REQUIRE(exec(s.get(), "notify it_strict, 'ok'").ok());
    auto got = notes(c.get(), 2s);
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "ok");
    // Inside a transaction block it would stay on the connection: refused there, as before.
    REQUIRE(exec(c.get(), "begin").ok());
    CHECK(exec(c.get(), "LISTEN it_strict2").sqlstate == "0A000");
    REQUIRE(exec(c.get(), "rollback").ok());
  }
}

TEST_CASE("the listening connection killed on the server: pgrelay reconnects, LISTENs again, delivery goes on") {
  PgrelayProcess relay(pooled(1));
  Conn listener = connect_ok(relay.conninfo());
  REQUIRE(exec(listener.get(), "LISTEN it_revive").ok());
  Conn d = connect_ok(direct_conninfo());
  const std::string hub = "select pid from pg_stat_activity where query = 'LISTEN \"it_revive\"'";
  const std::string old_pid = scalar(d.get(), hub);
  REQUIRE(exec(d.get(), "select pg_terminate_backend(" + old_pid + ")").ok());
  // Back within a few seconds on a new backend (notifications sent while it was gone are lost:
  // documented).
  bool back = false;
  for (int i = 0; i < 50 && !back; ++i) {
    std::this_thread::sleep_for(100ms);
    auto rows = exec(d.get(), hub).rows;
    back = rows.size() == 1 && rows[0].at(0) != old_pid;
  }
  REQUIRE(back);
  Conn sender = connect_ok(relay.conninfo());
  REQUIRE(exec(sender.get(), "notify it_revive, 'after'").ok());
  auto got = notes(listener.get(), 3s);
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "after");
  CHECK(relay.log().find("reconnecting") != std::string::npos);
}
