// Transaction and statement pooling end to end: many clients on few server connections, each
// seeing only its own settings and prepared statements, and no transaction left behind.
#include <doctest/doctest.h>

#include <atomic>
#include <regex>
#include <thread>

#include "harness.h"
#include "temp_cluster.h"

using namespace pgrelay::it;

namespace {

RelayConfig pooled(const std::string& mode, int pool_size) {
  return RelayConfig().pool(mode, pool_size).set("max_client_conn", "2000");
}

// Server backends of the shared cluster connected to `db` for `user`, seen directly.
int backends(const std::string& user) {
  Conn d = connect_ok(direct_conninfo());
  return std::stoi(scalar(d.get(), "select count(*) from pg_stat_activity where usename = '" + user +
                                       "' and backend_type = 'client backend' and pid <> pg_backend_pid()"));
}

// A raw client logged in as postgres/postgres, past the first ReadyForQuery.
std::unique_ptr<RawClient> raw_login(const PgrelayProcess& relay) {
  auto c = std::make_unique<RawClient>(relay.port());
  REQUIRE(c->send(startup_packet({{"user", "postgres"}, {"database", "postgres"}})));
  bool eof = false;
  auto greeting = c->read_messages_until('Z', 5s, &eof);
  REQUIRE_FALSE(eof);
  REQUIRE(!greeting.empty());
  REQUIRE(greeting.back().type == 'Z');
  return c;
}

// A server backend outlives its closed connection by a moment: counts are polled, not read once.
template <class Pred>
bool eventually(Pred pred, Millis timeout = 3s) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(25ms);
  }
  return true;
}

double number_after(const std::string& text, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(label + "\\s*=?\\s*:?\\s*([0-9.]+)"))) return -1;
  return std::stod(m[1]);
}

}  // namespace

TEST_CASE("transaction mode: 60 clients share 2 server connections, every transaction commits") {
  PgrelayProcess relay(pooled("transaction", 2));
  {
    Conn setup = connect_ok(relay.conninfo());
    REQUIRE(exec(setup.get(), "drop table if exists pooling_tx; create table pooling_tx(client int, n int)").ok());
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 60; ++i) {
    threads.emplace_back([&, i] {
      try {
        Conn c = connect_ok(relay.conninfo());
        for (int n = 0; n < 5; ++n) {
          bool ok = exec(c.get(), "begin").ok() &&
                    exec(c.get(), "insert into pooling_tx values (" + std::to_string(i) + ", " + std::to_string(n) + ")").ok() &&
                    scalar(c.get(), "select count(*) from pooling_tx where client = " + std::to_string(i)) == std::to_string(n + 1) &&
                    exec(c.get(), "commit").ok();
          if (!ok) ++failures;
        }
      } catch (...) {
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  Conn check = connect_ok(relay.conninfo());
  CHECK(scalar(check.get(), "select count(*) from pooling_tx") == "300");
  CHECK(backends("postgres") <= 2 + 1);   // the pool, plus at most the direct checker's own
}

TEST_CASE("transaction mode: pgbench -S with 500 clients on a pool of 10, simple, extended and prepared") {
  PgrelayProcess relay(pooled("transaction", 10));
  auto init = run_command(std::string(PGRELAY_IT_PGBENCH) + " -i -s 1 -q -h 127.0.0.1 -p " + std::to_string(cluster_port()) +
                          " -U postgres postgres", 120s);
  REQUIRE_MESSAGE(init.exit_code == 0, init.output);
  for (const char* mode : {"simple", "extended", "prepared"}) {
    CAPTURE(mode);
    auto r = run_command("ulimit -n 4096; " + std::string(PGRELAY_IT_PGBENCH) + " -n -S -M " + mode +
                             " -c 500 -j 2 -T 3 -h 127.0.0.1 -p " + std::to_string(relay.port()) + " -U postgres postgres",
                         120s);
    CHECK_MESSAGE(r.exit_code == 0, r.output);
    CHECK(number_after(r.output, "number of failed transactions") == 0);
    CHECK(number_after(r.output, "tps") > 0);
  }
  CHECK(backends("postgres") <= 10 + 1);
}

TEST_CASE("transaction mode: one client's settings never reach another on the same server connection") {
  PgrelayProcess relay(pooled("transaction", 1));
  Conn a = connect_ok(relay.conninfo("postgres", "postgres", "options='-c statement_timeout=100' application_name=client_a"));
  Conn b = connect_ok(relay.conninfo("postgres", "postgres", "application_name=client_b"));
  Conn direct = connect_ok(direct_conninfo());
  const std::string default_tz = scalar(direct.get(), "show timezone");

  CHECK(scalar(a.get(), "show statement_timeout") == "100ms");
  CHECK(scalar(b.get(), "show statement_timeout") == "0");
  CHECK(scalar(a.get(), "select current_setting('application_name')") == "client_a");
  CHECK(scalar(b.get(), "select current_setting('application_name')") == "client_b");

  REQUIRE(exec(a.get(), "set timezone = 'Asia/Tokyo'").ok());
  CHECK(scalar(b.get(), "show timezone") == default_tz);
  CHECK(scalar(a.get(), "show timezone") == "Asia/Tokyo");
  CHECK(scalar(a.get(), "show statement_timeout") == "100ms");
  // statement_timeout really applies to A's statements, and not to B's.
  auto slow = exec(a.get(), "select pg_sleep(0.5)");
  CHECK(slow.sqlstate == "57014");
  CHECK(exec(b.get(), "select pg_sleep(0.2)").ok());
}

TEST_CASE("transaction mode: libpq prepared statements of two clients with the same names, one server connection") {
  PgrelayProcess relay(pooled("transaction", 1));
  Conn a = connect_ok(relay.conninfo());
  Conn b = connect_ok(relay.conninfo());
  Result pa(PQprepare(a.get(), "s1", "select $1::int + 1", 1, nullptr));
  REQUIRE(PQresultStatus(pa.get()) == PGRES_COMMAND_OK);
  Result pb(PQprepare(b.get(), "s1", "select 'b:' || $1::text", 1, nullptr));
  REQUIRE(PQresultStatus(pb.get()) == PGRES_COMMAND_OK);
  for (int i = 0; i < 5; ++i) {
    std::string v = std::to_string(i);
    const char* params[] = {v.c_str()};
    Result ra(PQexecPrepared(a.get(), "s1", 1, params, nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(ra.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(ra.get(), 0, 0)) == std::to_string(i + 1));
    Result rb(PQexecPrepared(b.get(), "s1", 1, params, nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(rb.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(rb.get(), 0, 0)) == "b:" + v);
  }
  // Describe of a prepared statement works after the connection served someone else.
  Result d(PQdescribePrepared(a.get(), "s1"));
  REQUIRE(PQresultStatus(d.get()) == PGRES_COMMAND_OK);
  CHECK(PQnparams(d.get()) == 1);
  CHECK(PQnfields(d.get()) == 1);
  // DEALLOCATE ALL forgets A's statements; B's still work.
  REQUIRE(exec(a.get(), "deallocate all").ok());
  const char* params[] = {"7"};
  Result gone(PQexecPrepared(a.get(), "s1", 1, params, nullptr, nullptr, 0));
  CHECK(std::string(PQresultErrorField(gone.get(), PG_DIAG_SQLSTATE) ? PQresultErrorField(gone.get(), PG_DIAG_SQLSTATE) : "") == "26000");
  Result still(PQexecPrepared(b.get(), "s1", 1, params, nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(still.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(still.get(), 0, 0)) == "b:7");
}

TEST_CASE("transaction mode: a client that disconnects mid-transaction leaves nothing open for the next") {
  PgrelayProcess relay(pooled("transaction", 1));
  {
    Conn setup = connect_ok(relay.conninfo());
    REQUIRE(exec(setup.get(), "drop table if exists pooling_abandon; create table pooling_abandon(x int)").ok());
  }
  {
    Conn a = connect_ok(relay.conninfo());
    REQUIRE(exec(a.get(), "begin").ok());
    REQUIRE(exec(a.get(), "insert into pooling_abandon values (1)").ok());
  }  // gone without COMMIT
  Conn b = connect_ok(relay.conninfo());
  CHECK(scalar(b.get(), "select count(*) from pooling_abandon") == "0");
  CHECK(scalar(b.get(), "select pg_current_xact_id_if_assigned() is null") == "t");
  CHECK(PQtransactionStatus(b.get()) == PQTRANS_IDLE);
}

TEST_CASE("transaction mode: query_wait_timeout names the exhausted pool") {
  RelayConfig cfg = pooled("transaction", 1);
  cfg.set("query_wait_timeout", "\"1s\"");
  PgrelayProcess relay(cfg);
  Conn holder = connect_ok(relay.conninfo());
  REQUIRE(exec(holder.get(), "begin").ok());
  auto waiter = raw_login(relay);
  REQUIRE(waiter->send(query_message("select 1")));
  bool eof = false;
  auto reply = waiter->read_until_eof(5s, &eof);
  CHECK(eof);   // closed after the error, as PgBouncer does
  auto err = first_error(reply);
  REQUIRE(err.has_value());
  CHECK(err->sqlstate == "53300");
  CHECK(err->message.find("query_wait_timeout") != std::string::npos);
  CHECK(err->message.find("postgres/postgres") != std::string::npos);
  REQUIRE(exec(holder.get(), "commit").ok());
  Conn after = connect_ok(relay.conninfo());
  CHECK(scalar(after.get(), "select 1") == "1");
}

TEST_CASE("statement mode: single statements pool, a transaction block is refused") {
  PgrelayProcess relay(pooled("statement", 1));
  Conn a = connect_ok(relay.conninfo());
  Conn b = connect_ok(relay.conninfo());
  CHECK(scalar(a.get(), "select 1") == "1");
  CHECK(scalar(b.get(), "select 2") == "2");
  auto raw = raw_login(relay);
  REQUIRE(raw->send(query_message("begin")));
  bool eof = false;
  auto reply = raw->read_until_eof(5s, &eof);
  CHECK(eof);
  auto err = first_error(reply);
  REQUIRE(err.has_value());
  CHECK(err->message == "transaction blocks not allowed in statement pooling mode");
  // B is unaffected, and the server was rolled back before B got it.
  CHECK(scalar(b.get(), "select 3") == "3");
  CHECK(PQtransactionStatus(b.get()) == PQTRANS_IDLE);
}

TEST_CASE("idle server connections close after server_idle_timeout, down to min_pool_size") {
  RelayConfig cfg = pooled("transaction", 5);
  cfg.set("min_pool_size", "2").set("server_idle_timeout", "\"1s\"");
  PgrelayProcess relay(cfg);
  std::vector<Conn> holders;
  for (int i = 0; i < 5; ++i) {
    holders.push_back(connect_ok(relay.conninfo()));
    REQUIRE(exec(holders.back().get(), "begin").ok());   // each holds its own server connection
  }
  CHECK(eventually([] { return backends("postgres") == 5; }));
  for (auto& h : holders) REQUIRE(exec(h.get(), "commit").ok());
  holders.clear();
  CHECK(eventually([] { return backends("postgres") == 2; }, 4s));
}

TEST_CASE("transaction mode: cancel reaches the client's own query, within a second") {
  PgrelayProcess relay(pooled("transaction", 1));
  Conn a = connect_ok(relay.conninfo());
  REQUIRE(PQsendQuery(a.get(), "select pg_sleep(10)") == 1);
  std::this_thread::sleep_for(300ms);   // the query is running on the only server connection
  PGcancel* cancel = PQgetCancel(a.get());
  REQUIRE(cancel != nullptr);
  char err[256];
  auto sent = std::chrono::steady_clock::now();
  CHECK(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  REQUIRE(wait_readable(a.get(), 2s));
  Result r(PQgetResult(a.get()));
  CHECK(std::chrono::steady_clock::now() - sent < 1s);
  const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
  CHECK(std::string(state ? state : "") == "57014");
  while (PGresult* rest = PQgetResult(a.get())) PQclear(rest);
  // The connection goes on to serve the next client's query, uncancelled.
  Conn b = connect_ok(relay.conninfo());
  CHECK(exec(b.get(), "select pg_sleep(0.3)").ok());
  CHECK(scalar(a.get(), "select 1") == "1");
}

TEST_CASE("idle_transaction_timeout ends a client idle inside a transaction and frees its connection") {
  RelayConfig cfg = pooled("transaction", 1);
  cfg.set("idle_transaction_timeout", "\"1s\"");
  PgrelayProcess relay(cfg);
  auto a = raw_login(relay);
  REQUIRE(a->send(query_message("begin")));
  auto begun = a->read_messages_until('Z', 5s);
  REQUIRE(!begun.empty());
  bool eof = false;
  auto reply = a->read_until_eof(5s, &eof);   // says nothing: pgrelay ends it
  CHECK(eof);
  auto err = first_error(reply);
  REQUIRE(err.has_value());
  CHECK(err->sqlstate == "25P03");
  CHECK(err->message.find("idle_transaction_timeout") != std::string::npos);
  Conn b = connect_ok(relay.conninfo());
  CHECK(scalar(b.get(), "select 1") == "1");
  CHECK(PQtransactionStatus(b.get()) == PQTRANS_IDLE);
}

TEST_CASE("client_idle_timeout disconnects a client that says nothing") {
  RelayConfig cfg = pooled("transaction", 2);
  cfg.set("client_idle_timeout", "\"1s\"");
  PgrelayProcess relay(cfg);
  auto a = raw_login(relay);
  bool eof = false;
  auto reply = a->read_until_eof(5s, &eof);
  CHECK(eof);
  auto err = first_error(reply);
  REQUIRE(err.has_value());
  CHECK(err->message.find("client_idle_timeout") != std::string::npos);
}

TEST_CASE("query_timeout cancels a long query on the server") {
  RelayConfig cfg = pooled("transaction", 1);
  cfg.set("query_timeout", "\"500ms\"");
  PgrelayProcess relay(cfg);
  Conn a = connect_ok(relay.conninfo());
  auto started = std::chrono::steady_clock::now();
  auto r = exec(a.get(), "select pg_sleep(5)");
  CHECK(r.sqlstate == "57014");
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(scalar(a.get(), "select 1") == "1");   // quick queries are not touched
}

TEST_CASE("server_lifetime recycles server connections") {
  RelayConfig cfg = pooled("transaction", 1);
  cfg.set("server_lifetime", "\"1s\"");
  PgrelayProcess relay(cfg);
  Conn a = connect_ok(relay.conninfo());
  std::string first = scalar(a.get(), "select pg_backend_pid()");
  CHECK(scalar(a.get(), "select pg_backend_pid()") == first);   // young: reused
  std::this_thread::sleep_for(2500ms);
  CHECK(scalar(a.get(), "select pg_backend_pid()") != first);
}

TEST_CASE("PostgreSQL restarted while clients are connected: their next queries wait and then succeed") {
  // A cluster of its own: stopping the shared one would break the other tests.
  TempCluster pg("restart");
  RelayConfig cfg = pooled("transaction", 4);
  cfg.set("server_login_retry", "\"15s\"").set("query_wait_timeout", "\"20s\"");
  cfg.add_database("restartdb", pg.database_entry());
  PgrelayProcess relay(cfg);
  std::vector<Conn> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connect_ok(relay.conninfo("restartdb")));
    REQUIRE(scalar(clients.back().get(), "select 1") == "1");
  }

  pg.stop_fast();
  std::string restart_error;
  std::thread restart([&] {
    std::this_thread::sleep_for(2s);
    try {
      pg.start();
    } catch (const std::exception& e) {
      restart_error = e.what();
    }
  });
  auto asked = std::chrono::steady_clock::now();
  std::atomic<int> ok{0};
  std::vector<std::thread> queries;
  for (auto& c : clients) {
    queries.emplace_back([&, conn = c.get()] {
      if (exec(conn, "select 1").ok()) ++ok;
    });
  }
  for (auto& t : queries) t.join();
  restart.join();
  REQUIRE_MESSAGE(restart_error.empty(), restart_error);
  CHECK(ok == 4);
  CHECK(std::chrono::steady_clock::now() - asked >= 1500ms);   // they really waited for the restart
  CHECK(std::chrono::steady_clock::now() - asked < 15s);
}

TEST_CASE("reserve_pool_size serves a client that waited reserve_pool_timeout, then shrinks back") {
  RelayConfig cfg = pooled("transaction", 1);
  cfg.set("reserve_pool_size", "1").set("reserve_pool_timeout", "\"300ms\"");
  PgrelayProcess relay(cfg);
  Conn a = connect_ok(relay.conninfo());
  REQUIRE(exec(a.get(), "begin").ok());   // holds the pool's only connection
  Conn b = connect_ok(relay.conninfo());
  auto asked = std::chrono::steady_clock::now();
  CHECK(scalar(b.get(), "select 1") == "1");
  auto waited = std::chrono::steady_clock::now() - asked;
  CHECK(waited >= 250ms);
  CHECK(waited < 3s);
  REQUIRE(exec(a.get(), "commit").ok());
  CHECK(eventually([] { return backends("postgres") == 1; }));   // the reserve connection closed when nobody waited
}

TEST_CASE("transaction mode: pg_terminate_backend of a server mid-query fails that client only") {
  PgrelayProcess relay(pooled("transaction", 2));
  Conn victim = connect_ok(relay.conninfo("postgres", "postgres", "application_name=victim"));
  Conn other = connect_ok(relay.conninfo());
  REQUIRE(PQsendQuery(victim.get(), "select pg_sleep(10)") == 1);
  std::this_thread::sleep_for(300ms);
  Conn direct = connect_ok(direct_conninfo());
  CHECK(scalar(direct.get(), "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity "
                             "where query = 'select pg_sleep(10)') t") == "1");
  REQUIRE(wait_readable(victim.get(), 3s));
  Result r(PQgetResult(victim.get()));
  CHECK(PQresultStatus(r.get()) == PGRES_FATAL_ERROR);
  while (PGresult* rest = PQgetResult(victim.get())) PQclear(rest);
  // The other client, and new ones, go on; the dead connection is never handed out.
  for (int i = 0; i < 5; ++i) CHECK(scalar(other.get(), "select 1") == "1");
  Conn fresh = connect_ok(relay.conninfo());
  CHECK(scalar(fresh.get(), "select 2") == "2");
}

TEST_CASE("server_check_query runs on a connection idle longer than server_check_delay, not on a busy one") {
  {
    Conn d = connect_ok(direct_conninfo());
    REQUIRE(exec(d.get(), "drop table if exists pooling_checks; create table pooling_checks(at timestamptz default now())").ok());
  }
  RelayConfig cfg = pooled("transaction", 1);
  cfg.set("server_check_delay", "\"500ms\"").set("server_check_query", "\"insert into pooling_checks default values\"");
  PgrelayProcess relay(cfg);
  Conn a = connect_ok(relay.conninfo());
  auto checks = [] {
    Conn d = connect_ok(direct_conninfo());
    return std::stoi(scalar(d.get(), "select count(*) from pooling_checks"));
  };
  for (int i = 0; i < 5; ++i) REQUIRE(scalar(a.get(), "select 1") == "1");   // back to back: no check
  CHECK(checks() == 0);
  std::this_thread::sleep_for(800ms);
  REQUIRE(scalar(a.get(), "select 1") == "1");
  CHECK(checks() == 1);
}

TEST_CASE("dynamic sizing: a spare connection ahead of demand, growth under load, shrinking back when quiet") {
  RelayConfig cfg = pooled("transaction", 8);
  cfg.set("min_pool_size", "1").set("scale_down_delay", "\"1s\"");
  PgrelayProcess relay(cfg);
  {
    Conn first = connect_ok(relay.conninfo());
    REQUIRE(exec(first.get(), "begin").ok());
    // One busy connection of one open is utilization 1.0 >= scale_up_threshold 0.8: a spare opens.
    CHECK(eventually([] { return backends("postgres") == 2; }));
    REQUIRE(exec(first.get(), "commit").ok());
  }
  std::vector<Conn> load;
  for (int i = 0; i < 8; ++i) {
    load.push_back(connect_ok(relay.conninfo()));
    REQUIRE(exec(load.back().get(), "begin").ok());
  }
  CHECK(eventually([] { return backends("postgres") == 8; }));   // grew to pool_size, and not beyond
  for (auto& c : load) REQUIRE(exec(c.get(), "commit").ok());
  // Quiet now (peak utilization 0 < 0.3) for longer than scale_down_delay: back to min_pool_size.
  CHECK(eventually([] { return backends("postgres") == 1; }, 6s));
  CHECK(relay.log().find("scaling down from 8 to 1 server connections") != std::string::npos);
  // The clients still work on what is left.
  for (auto& c : load) CHECK(scalar(c.get(), "select 1") == "1");
}

namespace {
void ensure_role(const std::string& role) {
  Conn d = connect_ok(direct_conninfo());
  exec(d.get(), "create role " + role + " login");   // may exist from an earlier run
}
}  // namespace

TEST_CASE("max_db_connections holds across users: an idle connection of one pool makes room for another") {
  ensure_role("it_pool_user");
  RelayConfig cfg = pooled("transaction", 5);
  cfg.set("query_wait_timeout", "\"1s\"").set("max_db_connections", "2");
  PgrelayProcess relay(cfg);
  auto both = [] { return backends("postgres") + backends("it_pool_user"); };
  Conn a = connect_ok(relay.conninfo());
  REQUIRE(exec(a.get(), "begin").ok());   // postgres pool: 1 busy, plus its spare
  Conn b = connect_ok(relay.conninfo("postgres", "it_pool_user"));
  CHECK(scalar(b.get(), "select current_user") == "it_pool_user");   // took the spare's place
  CHECK(eventually([&] { return both() <= 2; }));
  REQUIRE(exec(b.get(), "begin").ok());   // now both connections the database may have are busy
  Conn c = connect_ok(relay.conninfo("postgres", "it_pool_user"));
  CHECK_FALSE(exec(c.get(), "select 1").ok());
  // FATAL, then the connection closes (libpq appends its own "server closed the connection").
  const std::string why = PQerrorMessage(c.get());
  CHECK(why.find("FATAL:  query_wait_timeout") != std::string::npos);
  CHECK(why.find("max_db_connections (2) reached for database \"postgres\"") != std::string::npos);
  CHECK(eventually([&] { return both() <= 2; }));
  REQUIRE(exec(a.get(), "commit").ok());   // a's connection goes idle in the postgres pool ...
  Conn d = connect_ok(relay.conninfo("postgres", "it_pool_user"));
  CHECK(scalar(d.get(), "select 2") == "2");   // ... and is closed for the other pool's client
  CHECK(eventually([&] { return both() <= 2; }));
  REQUIRE(exec(b.get(), "commit").ok());
}

TEST_CASE("max_user_connections holds across databases: a waiting client is served when the other pool's connection is free") {
  RelayConfig cfg = pooled("transaction", 5);
  cfg.set("max_user_connections", "1").set("query_wait_timeout", "\"5s\"");
  PgrelayProcess relay(cfg);
  // Transaction-mode clients take a connection at their first login to a pool: b logs in first.
  Conn b = connect_ok(relay.conninfo("bench"));
  Conn a = connect_ok(relay.conninfo("postgres"));
  REQUIRE(exec(a.get(), "begin").ok());   // bench's idle connection made room for it
  REQUIRE(PQsendQuery(b.get(), "select current_database()") == 1);
  std::this_thread::sleep_for(500ms);
  CHECK_FALSE(wait_readable(b.get(), 0ms));   // waiting: the user's one connection is a's
  CHECK(eventually([] { return backends("postgres") == 1; }));
  REQUIRE(exec(a.get(), "commit").ok());
  REQUIRE(wait_readable(b.get(), 3s));
  REQUIRE(PQconsumeInput(b.get()) == 1);
  Result r(PQgetResult(b.get()));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "bench");
  while (PGresult* rest = PQgetResult(b.get())) PQclear(rest);
  CHECK(eventually([] { return backends("postgres") == 1; }));
}
