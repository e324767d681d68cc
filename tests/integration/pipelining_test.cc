// Pipelining (docs/pipelining.md): lone autocommit reads of many clients on shared lanes, each
// client still answered under its own settings, a cancel (the client's, or query_timeout's)
// answered for its client alone, a lane connection lost without an error for anybody, lane
// connections in SHOW SERVERS.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "harness.h"
#include "pipelining_util.h"

using namespace pgrelay::it;

namespace {

template <class Pred>
bool eventually(Pred pred, Millis timeout = 5s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(25ms);
  }
  return true;
}

// A table `name` of 4,000 rows for slow plain reads (made again).
void make_slow_table(PGconn* direct, const std::string& name) {
  REQUIRE(exec(direct, "drop table if exists " + name + "; create table " + name +
                           " as select g from generate_series(1, 4000) g").ok());
}

// About 6.4e10 combinations and no function call (a plain read): it runs until cancelled.
// `bound`: what the sum is compared with ("0", or a parameter).
std::string slow_read(const std::string& table, const std::string& bound = "0") {
  return "select x.g from " + table + " x, " + table + " y, " + table + " z where x.g + y.g + z.g < " + bound;
}

// The backends running a slow_read() of `table` now (not `direct`'s own), by pid.
std::string running_sql(const std::string& table) {
  return "select pid from pg_stat_activity where query like '%" + table + " x%' and state = 'active' "
         "and pid <> pg_backend_pid() order by pid";
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
  CHECK(backends_of("lane_settings") <= 2);
}

TEST_CASE("a pipelined answer to a client that reads slowly: every byte arrives in order, other reads go on") {
  // The lane hands large answers over in parts, the last (and every small one) written as soon
  // as the lane has it, as far as the client's socket takes it; the session writes the rest.
  const int metrics_port = free_port();
  PgrelayProcess relay(pipelined(2, metrics_port));
  constexpr int kRows = 3000;   // about 3 MB
  const std::string row(1000, 'x');
  {
    Conn direct = connect_ok(direct_conninfo());
    REQUIRE(exec(direct.get(), "drop table if exists lane_wide; create table lane_wide as select repeat('x', 1000) as v "
                               "from generate_series(1, " + std::to_string(kRows) + ")").ok());
  }
  RawClient slow(relay.port());
  raw_login(slow);
  const double pipelined_before = metric(metrics_port, "pgrelay_pipelined_statements_total");
  REQUIRE(slow.send(query_message("select v from lane_wide")));
  std::this_thread::sleep_for(300ms);   // not read yet: the sockets fill up (3 MB)
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") == pipelined_before + 1);
  // Meanwhile another client's reads are answered.
  Conn other = connect_ok(relay.conninfo());
  for (int i = 0; i < 20; ++i) CHECK(scalar(other.get(), "select " + std::to_string(i)) == std::to_string(i));
  for (int round = 0; round < 2; ++round) {
    const auto messages = slow.read_messages_until('Z', 10s);
    REQUIRE(!messages.empty());
    int rows = 0, wrong = 0;
    for (const auto& m : messages) {
      if (m.type != 'D') continue;
      // One column: a count of 1, then the value's length and the value.
      const bool right = m.payload.size() == 2 + 4 + row.size() && load_be32(m.payload.data() + 2) == row.size() &&
                         m.payload.compare(6, row.size(), row) == 0;
      wrong += !right;
      ++rows;
    }
    CHECK(wrong == 0);
    CHECK(rows == (round == 0 ? kRows : 1));
    CHECK(messages.back().type == 'Z');
    CHECK(messages.back().payload == "I");
    CHECK_FALSE(first_error(messages).has_value());
    // The same client's next read, a small one, answered right after.
    if (round == 0) REQUIRE(slow.send(query_message("select v from lane_wide limit 1")));
  }
}

TEST_CASE("a pipelined read cancelled by its client gets 57014 and the server stops running it") {
  const int metrics_port = free_port();
  PgrelayProcess relay(pipelined(2, metrics_port));
  Conn direct = connect_ok(direct_conninfo());
  make_slow_table(direct.get(), "lane_slow");
  Conn a = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_cancel"));
  Conn b = connect_ok(relay.conninfo());
  REQUIRE(PQsendQuery(a.get(), slow_read("lane_slow").c_str()) == 1);
  REQUIRE(eventually([&] { return metric(metrics_port, "pgrelay_pipelined_statements_total") >= 1; }));
  std::this_thread::sleep_for(200ms);
  // Another client's reads meanwhile are answered (another connection: the slow one takes none).
  CHECK(scalar(b.get(), "select 7 as seven") == "7");
  cancel_expecting_57014(a.get());
  // The server stopped it too (its connection is retired, never given to another client).
  CHECK(eventually([&] { return exec(direct.get(), running_sql("lane_slow")).rows.empty(); }));
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

TEST_CASE("query_timeout in a lane: 57014 at the timeout, the server stops it, other reads go on through lanes") {
  const int metrics_port = free_port();
  // A second: a loaded machine (CI, the other tests beside this one) can take a few hundred ms
  // to fork a backend, or to act on a cancel, and the other client's reads must not time out.
  PgrelayProcess relay(pipelined(4, metrics_port).set("query_timeout", "\"1s\""));
  Conn direct = connect_ok(direct_conninfo());
  make_slow_table(direct.get(), "lane_timeout");
  Conn a = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_timeout"));
  Conn b = connect_ok(relay.conninfo());
  // Faster than the timeout: answered, through a lane (a lane for query_timeout's clients at all).
  const double before = metric(metrics_port, "pgrelay_pipelined_statements_total");
  CHECK(scalar(a.get(), "select 5 as five") == "5");
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") == before + 1);

  // Another client reads all along, one statement at a time.
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0}, answered{0};
  std::thread reader([&] {
    for (int i = 0; !stop; ++i) {
      const std::string n = std::to_string(1000 + i);
      const auto read_sent = std::chrono::steady_clock::now();
      auto r = exec(b.get(), "select " + n + " as n");
      if (!r.ok() || r.rows.size() != 1 || r.rows[0].at(0) != n) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - read_sent);
        if (wrong++ == 0) MESSAGE("round ", i, ": ", r.sqlstate, " ", r.message, " after ", ms.count(), " ms");
      } else {
        ++answered;
      }
    }
  });
  std::this_thread::sleep_for(100ms);
  const double cancels = metric(metrics_port, "pgrelay_pipeline_cancels_total");
  const auto sent = std::chrono::steady_clock::now();
  auto r = exec(a.get(), slow_read("lane_timeout"));
  const auto took = std::chrono::steady_clock::now() - sent;
  // What a query_timeout gives on the ordinary path: PostgreSQL's answer to a CancelRequest.
  CHECK(r.sqlstate == "57014");
  CHECK(r.severity == "ERROR");
  CHECK(r.message == "canceling statement due to user request");
  CHECK(took >= 990ms);
  CHECK(took < 2500ms);
  // It was a lane's (the ordinary path counts no pipeline cancel), and the server stopped it.
  CHECK(metric(metrics_port, "pgrelay_pipeline_cancels_total") == cancels + 1);
  CHECK(eventually([&] { return exec(direct.get(), running_sql("lane_timeout")).rows.empty(); }));
  std::this_thread::sleep_for(200ms);
  const int during = answered;
  const double pipelined_during = metric(metrics_port, "pgrelay_pipelined_statements_total");
  std::this_thread::sleep_for(300ms);
  stop = true;
  reader.join();
  CHECK(wrong == 0);
  CHECK(during > 10);
  // The other client's reads went down lanes, after the timeout too.
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") > pipelined_during);
  CHECK(metric(metrics_port, "pgrelay_pipelined_statements_total") >= before + 2 + answered);
  // The client goes on, with an extended-protocol read (PQexecParams) in a lane: the same.
  CHECK(scalar(a.get(), "select 8 as eight") == "8");
  const auto sent_params = std::chrono::steady_clock::now();
  auto p = exec_params(a.get(), slow_read("lane_timeout", "$1"), {std::string("0")});
  const auto took_params = std::chrono::steady_clock::now() - sent_params;
  CHECK(p.sqlstate == "57014");
  CHECK(took_params >= 990ms);
  CHECK(took_params < 2500ms);
  CHECK(metric(metrics_port, "pgrelay_pipeline_cancels_total") == cancels + 2);
  auto q = exec_params(a.get(), "select $1::int + 1 as n", {std::string("41")});
  CHECK((q.ok() && q.rows.size() == 1 && q.rows[0].at(0) == "42"));
  REQUIRE(exec(direct.get(), "drop table lane_timeout").ok());
}

TEST_CASE("query_timeout: a read queued behind a timed-out one in its lane is answered, its time counted from its start") {
  const int metrics_port = free_port();
  // One worker, one lane connection, no wait bound: the second read joins the first one's queue.
  PgrelayProcess relay(pipelined(2, metrics_port).set("workers", "1").set("pipeline_connections", "1")
                           .set("pipeline_max_wait", "\"10s\"").set("query_timeout", "\"1s\""));
  Conn direct = connect_ok(direct_conninfo());
  make_slow_table(direct.get(), "lane_behind");
  Conn a = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_behind"));
  Conn b = connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_behind"));
  const auto a_sent = std::chrono::steady_clock::now();
  REQUIRE(PQsendQuery(a.get(), slow_read("lane_behind").c_str()) == 1);
  REQUIRE(eventually([&] { return metric(metrics_port, "pgrelay_pipelined_statements_total") >= 1; }));
  const auto sent = std::chrono::steady_clock::now();
  // About 1e6 combinations (tens of ms): well within query_timeout from its own start, but not
  // from when it joined the lane (it would be cancelled right after a's).
  REQUIRE(PQsendQuery(b.get(), "select x.g from lane_behind x, lane_behind y where x.g <= 250 and x.g + y.g < 0") == 1);
  CHECK(eventually([&] { return metric(metrics_port, "pgrelay_pipelined_statements_total") >= 2; }));   // behind a's
  auto ra = await_result(a.get(), 5s);
  const auto a_answered = std::chrono::steady_clock::now();
  CHECK(ra.sqlstate == "57014");
  auto rb = await_result(b.get(), 5s);
  const auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  CHECK_MESSAGE(rb.ok(), rb.sqlstate, " ", rb.message, ": b sent ", ms(sent - a_sent), " ms after a, a answered ",
                ms(a_answered - a_sent), " ms after its start, b ", ms(std::chrono::steady_clock::now() - a_sent));
  CHECK(rb.rows.empty());
  CHECK(std::chrono::steady_clock::now() - sent < 4s);
  CHECK(metric(metrics_port, "pgrelay_pipeline_cancels_total") == 1);   // a's alone
  CHECK(eventually([&] { return exec(direct.get(), running_sql("lane_behind")).rows.empty(); }));
  CHECK(scalar(a.get(), "select 8 as eight") == "8");
  REQUIRE(exec(direct.get(), "drop table lane_behind").ok());
}

TEST_CASE("SHOW SERVERS lists lane connections as active, linked to no client; SHOW POOLS agrees") {
  const int metrics_port = free_port();
  // Two lane connections per lane: the second slow read finds the first's connection busy past
  // pipeline_max_wait and brings one (with the default of one it would take the ordinary path).
  PgrelayProcess relay(pipelined(4, metrics_port).set("admin_users", "[\"postgres\"]").set("pipeline_connections", "2"));
  Conn direct = connect_ok(direct_conninfo());
  make_slow_table(direct.get(), "lane_show");
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  // Two slow plain reads, each on a lane connection of its own (the first has been running past
  // pipeline_max_wait when the second comes, so it takes no more).
  std::vector<Conn> slow;
  for (int i = 0; i < 2; ++i) {
    slow.push_back(connect_ok(relay.conninfo("postgres", "postgres", "application_name=lane_show")));
    REQUIRE(PQsendQuery(slow.back().get(), slow_read("lane_show").c_str()) == 1);
    REQUIRE(eventually([&] { return metric(metrics_port, "pgrelay_pipelined_statements_total") >= i + 1; }));
    std::this_thread::sleep_for(100ms);
  }
  REQUIRE(eventually([&] { return exec(direct.get(), running_sql("lane_show")).rows.size() == 2; }));
  std::vector<std::string> running;
  for (const auto& row : exec(direct.get(), running_sql("lane_show")).rows) running.push_back(row.at(0).value_or(""));

  auto servers = exec(admin.get(), "SHOW SERVERS");
  REQUIRE(servers.ok());
  Result header(PQexec(admin.get(), "SHOW SERVERS"));
  const int state = PQfnumber(header.get(), "state"), link = PQfnumber(header.get(), "link"),
            pid = PQfnumber(header.get(), "remote_pid"), database = PQfnumber(header.get(), "database"),
            app = PQfnumber(header.get(), "application_name");
  REQUIRE(state >= 0);
  std::vector<std::string> active;
  int idle = 0;
  for (const auto& row : servers.rows) {
    if (row.at(database) != "postgres") continue;
    if (row.at(state) == "active") {
      CHECK(row.at(link) == std::nullopt);   // shared by many clients: no one client's
      CHECK(row.at(app) == "lane_show");     // the lane's settings
      active.push_back(row.at(pid).value_or(""));
    } else {
      ++idle;
    }
  }
  std::sort(active.begin(), active.end());
  std::sort(running.begin(), running.end());
  CHECK(active == running);
  // SHOW POOLS counts the same connections.
  for (const auto& row : exec(admin.get(), "SHOW POOLS").rows) {
    if (row.at(0) != "postgres" || row.at(1) != "postgres") continue;
    CHECK(row.at(6) == std::to_string(active.size()));                                  // sv_active
    CHECK(std::stoi(row.at(9).value_or("0")) + std::stoi(row.at(10).value_or("0")) == idle);   // sv_idle + sv_used
  }

  // Cancelled: the lanes retire both connections; then neither lists nor counts them.
  for (auto& c : slow) {
    PGcancel* cancel = PQgetCancel(c.get());
    char err[256];
    CHECK(PQcancel(cancel, err, sizeof err) == 1);
    PQfreeCancel(cancel);
    REQUIRE(wait_readable(c.get(), 5s));
    while (Result more{PQgetResult(c.get())}) {}
  }
  CHECK(eventually([&] {
    int rows = 0;
    for (const auto& row : exec(admin.get(), "SHOW SERVERS").rows) rows += row.at(state) == "active";
    for (const auto& row : exec(admin.get(), "SHOW POOLS").rows)
      if (row.at(0) == "postgres" && row.at(1) == "postgres" && row.at(6) != "0") return false;
    return rows == 0;
  }));
  REQUIRE(exec(direct.get(), "drop table lane_show").ok());
}
