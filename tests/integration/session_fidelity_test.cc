// Session fidelity: each client sees exactly its own session, in every pool mode, and nothing of
// anyone else's. Two clients A and B share a pool of one server connection; B runs between A's
// transactions.
#include <doctest/doctest.h>

#include <thread>

#include "harness.h"

using namespace pgrelay::it;

namespace {

RelayConfig one_connection(const std::string& mode, const std::string& policy = "pin") {
  RelayConfig c;
  c.set("pool_mode", "\"" + mode + "\"").set("pool_size", "1").set("session_state", "\"" + policy + "\"")
      .set("query_wait_timeout", "\"3s\"");
  return c;
}

void setup_roles() {
  Conn d = connect_ok(direct_conninfo());
  exec(d.get(), "create role it_reader nologin");   // may exist from an earlier run
  REQUIRE(exec(d.get(), "create table if not exists it_secret (x int); grant usage on schema public to it_reader").ok());
}

struct StateCase {
  const char* name;
  const char* make;    // A leaves state with this
  const char* probe;   // both run this; A must see `mine`, B must see `theirs`
  const char* mine;
  const char* theirs;
  bool pins = true;    // false: a setting, replayed rather than pinned (and never refused)
};

const StateCase kCases[] = {
    {"SET of an unreported parameter", "SET statement_timeout = '7s'", "show statement_timeout", "7s", "0", false},
    {"SET search_path", "SET search_path = pg_catalog, public", "show search_path", "pg_catalog, public", "\"$user\", public", false},
    {"set_config(..., false)", "select set_config('work_mem', '3MB', false)", "show work_mem", "3MB", "4MB", false},
    {"SET default_transaction_read_only", "SET default_transaction_read_only = on", "show default_transaction_read_only", "on", "off", false},
    {"SET TimeZone", "SET TimeZone = 'Asia/Tokyo'", "show timezone", "Asia/Tokyo", "Etc/UTC", false},
    {"SET ROLE", "SET ROLE it_reader", "select current_user", "it_reader", "postgres"},
    {"SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION it_reader", "select session_user", "it_reader", "postgres"},
    {"temporary table", "CREATE TEMP TABLE it_tmp (x int)", "select coalesce(to_regclass('pg_temp.it_tmp')::text, 'none')", "it_tmp", "none"},
    {"SQL PREPARE", "PREPARE it_q AS select 42", "select count(*) from pg_prepared_statements", "1", "0"},
    {"WITH HOLD cursor", "DECLARE it_c CURSOR WITH HOLD FOR select 1", "select count(*) from pg_cursors", "1", "0"},
    // A lone LISTEN goes to pgrelay's listening connection (listen_test.cc); one in a
    // transaction block stays on the server connection and pins.
    {"LISTEN in a transaction block", "BEGIN; LISTEN it_channel; COMMIT", "select count(*) from pg_listening_channels()", "1", "0"},
    {"session advisory lock", "select pg_advisory_lock(4242)",
     "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()", "1", "0"},
    {"LOAD", "LOAD 'auto_explain'", "select current_setting('auto_explain.log_min_duration', true) is not null", "t", "f"},
};

}  // namespace

TEST_CASE("transaction mode, pool of 1: state A leaves is never seen by B, and A keeps it") {
  setup_roles();
  PgrelayProcess relay(one_connection("transaction"));
  for (const auto& c : kCases) {
    CAPTURE(c.name);
    Conn a = connect_ok(relay.conninfo());
    Conn b = connect_ok(relay.conninfo());
    REQUIRE(exec(a.get(), c.make).ok());
    CHECK(scalar(b.get(), c.probe) == c.theirs);   // between A's transactions
    CHECK(scalar(a.get(), c.probe) == c.mine);
    CHECK(scalar(b.get(), c.probe) == c.theirs);
    // A leaves; whoever gets its connection next starts clean.
    a.reset();
    Conn next = connect_ok(relay.conninfo());
    CHECK(scalar(next.get(), c.probe) == c.theirs);
    CHECK(scalar(b.get(), c.probe) == c.theirs);
  }
}

TEST_CASE("SET ROLE by A never reaches B, even for a query B relies on its own privileges for") {
  setup_roles();
  PgrelayProcess relay(one_connection("transaction"));
  Conn a = connect_ok(relay.conninfo());
  Conn b = connect_ok(relay.conninfo());
  REQUIRE(exec(a.get(), "SET ROLE it_reader").ok());
  for (int i = 0; i < 5; ++i) {
    CHECK(scalar(b.get(), "select count(*) from it_secret") == "0");   // it_reader may not read it
    auto denied = exec(a.get(), "select count(*) from it_secret");
    CHECK(denied.sqlstate == "42501");
  }
  REQUIRE(exec(a.get(), "RESET ROLE").ok());   // back to sharing
  CHECK(scalar(a.get(), "select count(*) from it_secret") == "0");
  CHECK(scalar(b.get(), "select current_user") == "postgres");
  CHECK(relay.log().find("pinned to server connection") != std::string::npos);
  CHECK(relay.log().find("back to sharing server connections") != std::string::npos);
}

TEST_CASE("session_state = reject: A gets 0A000 before the server sees it, B is unaffected") {
  setup_roles();
  PgrelayProcess relay(one_connection("transaction", "reject"));
  Conn a = connect_ok(relay.conninfo());
  Conn b = connect_ok(relay.conninfo());
  auto refused = exec(a.get(), "SET ROLE it_reader");
  CHECK(refused.sqlstate == "0A000");
  CHECK(refused.message.find("SET ROLE is not supported in transaction pooling mode with session_state = \"reject\"") !=
        std::string::npos);
  CHECK(scalar(a.get(), "select current_user") == "postgres");   // it never ran
  CHECK(scalar(b.get(), "select current_user") == "postgres");
  // Inside a transaction it aborts the transaction, as a server error would.
  REQUIRE(exec(a.get(), "begin").ok());
  CHECK(exec(a.get(), "LISTEN it_channel").sqlstate == "0A000");
  CHECK(PQtransactionStatus(a.get()) == PQTRANS_INERROR);
  REQUIRE(exec(a.get(), "rollback").ok());
  // Extended protocol: refused at Parse.
  auto extended = exec_params(a.get(), "select pg_advisory_lock($1::bigint)", {"7"});
  CHECK(extended.sqlstate == "0A000");
  CHECK(scalar(b.get(), "select count(*) from pg_locks where locktype = 'advisory'") == "0");
  // Every statement that would pin is refused, and leaves nothing.
  for (const auto& c : kCases) {
    CAPTURE(c.name);
    if (!c.pins) continue;   // settings: replayed, see below
    CHECK(exec(a.get(), c.make).sqlstate == "0A000");
    CHECK(scalar(a.get(), c.probe) == c.theirs);
    CHECK(scalar(b.get(), c.probe) == c.theirs);
  }
  CHECK(relay.log().find("refused LOAD") != std::string::npos);
  // Settings are replayed, not refused.
  REQUIRE(exec(a.get(), "SET statement_timeout = '9s'").ok());
  CHECK(scalar(a.get(), "show statement_timeout") == "9s");
  CHECK(scalar(b.get(), "show statement_timeout") == "0");
}

TEST_CASE("statement_timeout from startup options and as a startup parameter, in every mode; RESET goes back to it") {
  for (const char* mode : {"session", "transaction", "statement"}) {
    CAPTURE(mode);
    PgrelayProcess relay(one_connection(mode));
    Conn a = connect_ok(relay.conninfo("postgres", "postgres", "options='-c statement_timeout=100'"));
    CHECK(scalar(a.get(), "show statement_timeout") == "100ms");
    CHECK(exec(a.get(), "select pg_sleep(0.5)").sqlstate == "57014");
    REQUIRE(exec(a.get(), "SET statement_timeout = '2s'").ok());
    CHECK(scalar(a.get(), "show statement_timeout") == "2s");
    REQUIRE(exec(a.get(), "RESET statement_timeout").ok());
    CHECK(scalar(a.get(), "show statement_timeout") == "100ms");
    REQUIRE(exec(a.get(), "SET statement_timeout = '3s'").ok());
    REQUIRE(exec(a.get(), "RESET ALL").ok());
    CHECK(scalar(a.get(), "show statement_timeout") == "100ms");
    a.reset();

    // The same as a parameter of its own in the StartupMessage.
    RawClient raw(relay.port());
    REQUIRE(raw.send(startup_packet({{"user", "postgres"}, {"database", "postgres"}, {"statement_timeout", "150"}})));
    auto greeting = raw.read_messages_until('Z', 5s);
    REQUIRE(!greeting.empty());
    REQUIRE(greeting.back().type == 'Z');
    REQUIRE(raw.send(query_message("show statement_timeout")));
    auto reply = raw.read_messages_until('Z', 5s);
    bool found = false;
    for (const auto& m : reply)
      if (m.type == 'D') found = m.payload.find("150ms") != std::string::npos;
    CHECK(found);
  }
}

TEST_CASE("RESET of a reported parameter goes back to the startup value, and the client is told") {
  PgrelayProcess relay(one_connection("transaction"));
  Conn a = connect_ok(relay.conninfo("postgres", "postgres", "options='-c TimeZone=Asia/Tokyo'"));
  CHECK(std::string(PQparameterStatus(a.get(), "TimeZone")) == "Asia/Tokyo");
  REQUIRE(exec(a.get(), "SET TimeZone = 'Europe/Paris'").ok());
  CHECK(std::string(PQparameterStatus(a.get(), "TimeZone")) == "Europe/Paris");
  REQUIRE(exec(a.get(), "RESET TimeZone").ok());
  CHECK(std::string(PQparameterStatus(a.get(), "TimeZone")) == "Asia/Tokyo");
  CHECK(scalar(a.get(), "show timezone") == "Asia/Tokyo");
}

TEST_CASE("a login with new startup settings on a connection another client SET things on greets with the defaults") {
  PgrelayProcess relay(one_connection("transaction"));
  Conn a = connect_ok(relay.conninfo());
  REQUIRE(exec(a.get(), "SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'SQL, DMY'; SET work_mem = '3MB'").ok());
  // B's startup settings are new to the pool: it logs in on the one connection, which carries A's SETs.
  Conn b = connect_ok(relay.conninfo("postgres", "postgres", "options='-c IntervalStyle=postgres_verbose'"));
  CHECK(std::string(PQparameterStatus(b.get(), "TimeZone")) == "Etc/UTC");
  CHECK(std::string(PQparameterStatus(b.get(), "DateStyle")) == "ISO, MDY");
  CHECK(std::string(PQparameterStatus(b.get(), "IntervalStyle")) == "postgres_verbose");
  CHECK(scalar(b.get(), "show timezone") == "Etc/UTC");
  CHECK(scalar(b.get(), "show datestyle") == "ISO, MDY");
  CHECK(scalar(b.get(), "show work_mem") == "4MB");
  CHECK(scalar(a.get(), "show timezone") == "Asia/Tokyo");
  CHECK(scalar(a.get(), "show work_mem") == "3MB");
  // A third client with the same startup settings is greeted from the pool's memory: the same view.
  Conn c = connect_ok(relay.conninfo("postgres", "postgres", "options='-c IntervalStyle=postgres_verbose'"));
  CHECK(std::string(PQparameterStatus(c.get(), "TimeZone")) == "Etc/UTC");
  CHECK(scalar(c.get(), "show timezone") == "Etc/UTC");
}

TEST_CASE("an invalid startup setting gets PostgreSQL's own error at login, in every mode") {
  for (const char* mode : {"session", "transaction"}) {
    CAPTURE(mode);
    PgrelayProcess relay(one_connection(mode));
    Conn bad = connect(relay.conninfo("postgres", "postgres", "options='-c no_such_setting.x=1 -c work_mem=lots'"));
    CHECK(PQstatus(bad.get()) == CONNECTION_BAD);
    CHECK(std::string(PQerrorMessage(bad.get())).find("invalid value for parameter \"work_mem\"") != std::string::npos);
    Conn good = connect_ok(relay.conninfo());
    CHECK(scalar(good.get(), "select 1") == "1");
  }
}

TEST_CASE("session mode shows the real backend: pid, pg_terminate_backend, NOTIFY sender") {
  PgrelayProcess relay(one_connection("session"));
  Conn a = connect_ok(relay.conninfo());
  CHECK(scalar(a.get(), "select pg_backend_pid()") == std::to_string(PQbackendPID(a.get())));
  {
    RelayConfig two = one_connection("session");
    two.set("pool_size", "2");
    PgrelayProcess relay2(two);
    Conn listener = connect_ok(relay2.conninfo());
    Conn sender = connect_ok(relay2.conninfo());
    REQUIRE(exec(listener.get(), "LISTEN it_pid").ok());
    REQUIRE(exec(sender.get(), "NOTIFY it_pid, 'hello'").ok());
    REQUIRE(wait_readable(listener.get(), 3s));
    REQUIRE(PQconsumeInput(listener.get()) == 1);
    PGnotify* n = PQnotifies(listener.get());
    REQUIRE(n != nullptr);
    CHECK(n->be_pid == PQbackendPID(sender.get()));
    CHECK(std::string(n->extra) == "hello");
    PQfreemem(n);
  }
  auto killed = exec(a.get(), "select pg_terminate_backend(pg_backend_pid())");
  CHECK_FALSE(killed.ok());
  CHECK(std::string(PQerrorMessage(a.get())).find("terminating connection due to administrator command") !=
        std::string::npos);
  Conn after = connect_ok(relay.conninfo());
  CHECK(scalar(after.get(), "select 1") == "1");
}
