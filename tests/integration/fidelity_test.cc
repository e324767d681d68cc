// Transaction-mode fidelity, round two: what a client sees through a small shared pool must be
// what it would see straight to PostgreSQL (issue: DEALLOCATE of protocol-level statements,
// Terminate before the startup packet).
#include <doctest/doctest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>

#include "harness.h"

using namespace pgrelay::it;

namespace {

RelayConfig pooled(const std::string& mode, int pool_size) { return RelayConfig().pool(mode, pool_size); }

// PQprepare's outcome: the SQLSTATE, "" when it succeeded.
std::string prepare(PGconn* c, const std::string& name, const std::string& sql) {
  Result r(PQprepare(c, name.c_str(), sql.c_str(), 0, nullptr));
  return to_query_result(c, r.get()).sqlstate;
}

// public.fid_t holds 'public', fid_s1.fid_t holds 's1': which one a query reads shows search_path.
void make_schemas() {
  Conn d = connect_ok(direct_conninfo());
  REQUIRE(exec(d.get(), "drop schema if exists fid_s1 cascade; create schema fid_s1; "
                        "create table if not exists public.fid_t (v text); truncate public.fid_t; "
                        "insert into public.fid_t values ('public'); create table fid_s1.fid_t (v text); "
                        "insert into fid_s1.fid_t values ('s1')").ok());
}

// Runs `sql` straight on PostgreSQL (setup, or DDL pgrelay must not see).
void run_direct(const std::string& sql) {
  Conn d = connect_ok(direct_conninfo());
  REQUIRE(exec(d.get(), sql).ok());
}

// A pgrelay with a small pool and two clients A and B sharing it.
struct TwoClients {
  TwoClients(const std::string& mode, int pool_size)
      : relay(pooled(mode, pool_size)), a(connect_ok(relay.conninfo())), b(connect_ok(relay.conninfo())) {}
  PgrelayProcess relay;
  Conn a, b;
};

QueryResult exec_prepared(PGconn* c, const std::string& name, const std::string& value) {
  const char* values[] = {value.c_str()};
  Result r(PQexecPrepared(c, name.c_str(), 1, values, nullptr, nullptr, 0));
  return to_query_result(c, r.get());
}

// Prepares each (name, text) on both server connections of a pool of 2 and runs it there.
void prepare_on_both_connections(PgrelayProcess& relay, const std::vector<std::pair<std::string, std::string>>& statements) {
  for (int i = 0; i < 2; ++i) {
    Conn c = connect_ok(relay.conninfo());
    Conn other = connect_ok(relay.conninfo());
    REQUIRE(exec(other.get(), "begin").ok());   // holds one connection, so c prepares on the other
    for (const auto& [name, text] : statements) {
      REQUIRE(prepare(c.get(), name, text) == "");
      CHECK(exec_prepared(c.get(), name, "1").rows.size() == 1);
    }
    REQUIRE(exec(other.get(), "commit").ok());
    for (const auto& [name, text] : statements) {
      REQUIRE(prepare(other.get(), name, text) == "");
      CHECK(exec_prepared(other.get(), name, "1").rows.size() == 1);
    }
  }
}

// `clients` new clients prepare `text` as "s" and get one row of `columns` columns, no error.
void new_clients_prepare(PgrelayProcess& relay, const std::string& text, size_t columns, int clients) {
  for (int i = 0; i < clients; ++i) {
    CAPTURE(i);
    Conn c = connect_ok(relay.conninfo());
    REQUIRE(prepare(c.get(), "s", text) == "");
    auto r = exec_prepared(c.get(), "s", "1");
    CHECK(r.sqlstate == "");
    REQUIRE(r.rows.size() == 1);
    CHECK(r.rows[0].size() == columns);
  }
}

}  // namespace

TEST_CASE("SQL DEALLOCATE of a protocol-level prepared statement, as drivers evict their caches") {
  for (const char* mode : {"transaction", "statement", "session"}) {
    CAPTURE(mode);
    PgrelayProcess relay(pooled(mode, 2));
    Conn a = connect_ok(relay.conninfo());
    Conn b = connect_ok(relay.conninfo());
    REQUIRE(prepare(a.get(), "_pg3_1", "select $1::int + 1") == "");
    REQUIRE(prepare(b.get(), "_pg3_1", "select $1::int + 2") == "");   // same name, another client
    CHECK(exec_prepared(a.get(), "_pg3_1", "1").rows.at(0).at(0) == "2");

    // PostgreSQL's own answer: DEALLOCATE, the name is gone, the transaction status unchanged.
    Result done(PQexec(a.get(), "DEALLOCATE _pg3_1"));
    CHECK(PQresultStatus(done.get()) == PGRES_COMMAND_OK);
    CHECK(std::string(PQcmdStatus(done.get())) == "DEALLOCATE");
    CHECK(PQtransactionStatus(a.get()) == PQTRANS_IDLE);
    CHECK(exec_prepared(a.get(), "_pg3_1", "1").sqlstate == "26000");
    CHECK(exec(a.get(), "DEALLOCATE _pg3_1").sqlstate == "26000");   // twice: does not exist, as PostgreSQL says
    // The other client's statement of the same name is untouched, and the name can be used again.
    CHECK(exec_prepared(b.get(), "_pg3_1", "1").rows.at(0).at(0) == "3");
    REQUIRE(prepare(a.get(), "_pg3_1", "select $1::int * 10") == "");
    CHECK(exec_prepared(a.get(), "_pg3_1", "4").rows.at(0).at(0) == "40");
    CHECK(exec(a.get(), "DEALLOCATE PREPARE _pg3_1").ok());
    // The extended protocol's way (PQexecParams; psycopg 3 evicts its cache so).
    REQUIRE(prepare(a.get(), "_pg3_2", "select 5") == "");
    CHECK(exec_params(a.get(), "DEALLOCATE _pg3_2", {}).ok());
    CHECK(exec_prepared(a.get(), "_pg3_2", "1").sqlstate == "26000");

    if (std::string(mode) == "statement") continue;   // no transaction blocks there
    // Inside a transaction block: answered, and the block goes on.
    REQUIRE(prepare(a.get(), "in_tx", "select $1::text") == "");
    REQUIRE(exec(a.get(), "begin").ok());
    CHECK(exec(a.get(), "deallocate in_tx").ok());
    CHECK(PQtransactionStatus(a.get()) == PQTRANS_INTRANS);
    CHECK(exec_prepared(a.get(), "in_tx", "x").sqlstate == "26000");
    CHECK(PQtransactionStatus(a.get()) == PQTRANS_INERROR);
    // In a failed transaction PostgreSQL refuses everything but the end of it.
    REQUIRE(prepare(b.get(), "failed_tx", "select 1") == "");
    REQUIRE(exec(b.get(), "begin").ok());
    CHECK(exec(b.get(), "select 1/0").sqlstate == "22012");
    CHECK(exec(b.get(), "deallocate failed_tx").sqlstate == "25P02");
    REQUIRE(exec(b.get(), "rollback").ok());
    REQUIRE(exec(a.get(), "rollback").ok());
  }
}

TEST_CASE("SQL PREPARE and DEALLOCATE of the same client stay the server's (pinned in transaction mode)") {
  PgrelayProcess relay(pooled("transaction", 2));
  Conn a = connect_ok(relay.conninfo());
  REQUIRE(exec(a.get(), "PREPARE mine AS select 42").ok());
  CHECK(scalar(a.get(), "EXECUTE mine") == "42");
  CHECK(exec(a.get(), "DEALLOCATE mine").ok());
  CHECK(exec(a.get(), "EXECUTE mine").sqlstate == "26000");
  CHECK(exec(a.get(), "DEALLOCATE not_there").sqlstate == "26000");
}

TEST_CASE("a Terminate instead of a startup packet closes the connection without a word, as PostgreSQL") {
  PgrelayProcess relay(pooled("transaction", 1));
  RawClient raw(relay.port());
  REQUIRE(raw.send(std::string("X\0\0\0\4", 5)));
  bool eof = false;
  const std::string reply = raw.read_until_eof(5s, &eof);
  CHECK(eof);
  CHECK(reply.empty());
  // Still serving.
  Conn c = connect_ok(relay.conninfo());
  CHECK(scalar(c.get(), "select 1") == "1");
}

TEST_CASE("a SET undone by ROLLBACK, ABORT, ROLLBACK AND CHAIN or ROLLBACK TO SAVEPOINT is not replayed; one COMMIT AND CHAIN kept is") {
  make_schemas();
  // One server connection: B's turn in between makes pgrelay replay A's settings on A's next turn.
  PgrelayProcess relay(pooled("transaction", 1));
  Conn a = connect_ok(relay.conninfo());
  Conn b = connect_ok(relay.conninfo());
  const std::vector<std::vector<std::string>> undone = {
      {"begin", "SET search_path = fid_s1", "rollback"},
      {"begin", "SET search_path = fid_s1", "abort"},
      {"begin", "select set_config('search_path', 'fid_s1', false)", "rollback"},
      {"begin", "SET search_path = fid_s1", "rollback and chain", "commit"},
      {"begin", "savepoint sp", "SET search_path = fid_s1", "rollback to savepoint sp", "commit"},
      {"begin; SET search_path = fid_s1; rollback"},
  };
  for (const auto& steps : undone) {
    CAPTURE(steps.front());
    CAPTURE(steps.size());
    for (const auto& sql : steps) REQUIRE(exec(a.get(), sql).ok());
    CHECK(scalar(b.get(), "select v from fid_t") == "public");
    CHECK(scalar(a.get(), "select v from fid_t") == "public");
    CHECK(scalar(a.get(), "show search_path") == "\"$user\", public");
  }
  // What was committed before the savepoint stays.
  for (const char* sql : {"begin", "SET parallel_setup_cost = 7", "savepoint sp", "SET search_path = fid_s1",
                          "rollback to sp", "commit"})
    REQUIRE(exec(a.get(), sql).ok());
  CHECK(scalar(b.get(), "show parallel_setup_cost") == "1000");
  CHECK(scalar(a.get(), "show parallel_setup_cost") == "7");
  CHECK(scalar(a.get(), "select v from fid_t") == "public");
  // A committed one is replayed as before.
  REQUIRE(exec(a.get(), "begin; SET search_path = fid_s1; commit").ok());
  CHECK(scalar(b.get(), "select v from fid_t") == "public");
  CHECK(scalar(a.get(), "select v from fid_t") == "s1");
  // Committed by COMMIT AND CHAIN, then the chained transaction fails: the SET holds for A only.
  REQUIRE(exec(a.get(), "reset search_path").ok());
  for (const char* sql : {"begin", "SET parallel_tuple_cost = 0.5", "commit and chain"}) REQUIRE(exec(a.get(), sql).ok());
  CHECK(exec(a.get(), "select 1/0").sqlstate == "22012");
  REQUIRE(exec(a.get(), "commit").ok());   // ROLLBACK of the chained transaction
  CHECK(scalar(b.get(), "show parallel_tuple_cost") == "0.1");
  CHECK(scalar(a.get(), "show parallel_tuple_cost") == "0.5");
}

TEST_CASE("a list-valued setting from startup options or set_config stays a list on every connection") {
  make_schemas();
  for (const char* mode : {"session", "transaction"}) {
    CAPTURE(mode);
    PgrelayProcess relay(pooled(mode, std::string(mode) == "session" ? 2 : 1));
    // Django's documented way to choose a schema.
    Conn a = connect_ok(relay.conninfo("postgres", "postgres", "options='-c search_path=fid_s1,public'"));
    CHECK(scalar(a.get(), "show search_path") == "fid_s1,public");   // as PostgreSQL shows it
    CHECK(scalar(a.get(), "select v from fid_t") == "s1");
    Conn b = connect_ok(relay.conninfo());
    CHECK(scalar(b.get(), "select v from fid_t") == "public");
    CHECK(scalar(a.get(), "select v from fid_t") == "s1");
    // set_config of a list, replayed after another client's turn.
    REQUIRE(exec(b.get(), "select set_config('search_path', 'fid_s1,public', false)").ok());
    CHECK(scalar(a.get(), "select v from fid_t") == "s1");
    CHECK(scalar(b.get(), "show search_path") == "fid_s1,public");   // as PostgreSQL shows it
    CHECK(scalar(b.get(), "select v from fid_t") == "s1");
    REQUIRE(exec(b.get(), "RESET search_path").ok());
    CHECK(scalar(b.get(), "select v from fid_t") == "public");
  }
}

TEST_CASE("the unnamed prepared statement follows its client to whatever connection it gets next") {
  for (const char* mode : {"transaction", "statement"}) {
    CAPTURE(mode);
    // One server connection: B's unnamed statement replaces A's there between A's requests.
    PgrelayProcess relay(pooled(mode, 1));
    Conn a = connect_ok(relay.conninfo());
    Conn b = connect_ok(relay.conninfo());
    REQUIRE(prepare(a.get(), "", "select $1::int + 100") == "");
    REQUIRE(prepare(b.get(), "", "select 'b'::text, 2") == "");
    // As psql's \gdesc and libpq PQdescribePrepared(conn, "") do: describe what this client prepared.
    Result described(PQdescribePrepared(a.get(), ""));
    REQUIRE(PQresultStatus(described.get()) == PGRES_COMMAND_OK);
    CHECK(PQnparams(described.get()) == 1);
    CHECK(PQnfields(described.get()) == 1);
    CHECK(exec_prepared(a.get(), "", "1").rows.at(0).at(0) == "101");
    Result b_described(PQdescribePrepared(b.get(), ""));
    CHECK(PQnfields(b_described.get()) == 2);
    // A simple Query in between destroys the unnamed statement on the server, not for the client.
    CHECK(scalar(b.get(), "select 3") == "3");
    CHECK(exec_prepared(a.get(), "", "2").rows.at(0).at(0) == "102");
  }
  // psql's \gdesc: Parse of the unnamed statement, then Describe of it in a second request.
  PgrelayProcess relay(pooled("transaction", 1));
  auto r = run_command("echo " + shell_quote("select 1::int as a, 'x'::text as b \\gdesc") + " | " +
                       std::string(PGRELAY_IT_PSQL) + " -X -w -A -P footer=off " + shell_quote(relay.conninfo()));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("a|integer") != std::string::npos);
  CHECK(r.output.find("b|text") != std::string::npos);
}

TEST_CASE("psycopg 3 through transaction pooling: prepare=True with cache eviction, rolled-back SETs, startup lists") {
  make_schemas();
  PgrelayProcess relay(pooled("transaction", 1));
  const std::string script = std::string(PGRELAY_SOURCE_DIR) + "/tests/integration/drivers/psycopg_fidelity.py";
  // Debian's psycopg lives under /usr/bin/python3 (another python3 may come first on PATH).
  auto r = run_command("/usr/bin/python3 " + shell_quote(script) + " " + shell_quote(relay.conninfo()) + " " +
                           shell_quote(direct_conninfo()),
                       120s);
  INFO(r.output);
  INFO(relay.log());
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("all ok") != std::string::npos);
}

TEST_CASE("shared prepared statements do not go stale for later clients after DDL made through pgrelay") {
  run_direct("drop table if exists fid_ddl; create table fid_ddl (a int); insert into fid_ddl values (1)");
  PgrelayProcess relay(pooled("transaction", 2));
  const std::string text = "select * from fid_ddl where a = $1";
  prepare_on_both_connections(relay, {{"s", text}});
  {
    Conn ddl = connect_ok(relay.conninfo());
    REQUIRE(exec(ddl.get(), "alter table fid_ddl add column b text default 'x'").ok());
  }
  // Straight to PostgreSQL a new connection never sees "cached plan must not change result type".
  new_clients_prepare(relay, text, 2, 15);
  // Dropping and re-creating a type a statement uses: no "cache lookup failed".
  {
    Conn d = connect_ok(relay.conninfo());
    REQUIRE(exec(d.get(), "drop type if exists fid_mood cascade; create type fid_mood as enum ('ok')").ok());
    REQUIRE(prepare(d.get(), "m", "select 'ok'::fid_mood, $1::int") == "");
    CHECK(exec_prepared(d.get(), "m", "1").sqlstate == "");
    REQUIRE(exec(d.get(), "drop type fid_mood; create type fid_mood as enum ('ok')").ok());
  }
  for (int i = 0; i < 4; ++i) {
    Conn c = connect_ok(relay.conninfo());
    REQUIRE(prepare(c.get(), "m", "select 'ok'::fid_mood, $1::int") == "");
    CHECK(exec_prepared(c.get(), "m", "1").sqlstate == "");
  }
}

TEST_CASE("a Unix-domain socket: psql -h DIR -p PORT works, and [[hba]] type \"local\" rules match it") {
  const std::string dir = "/tmp/pgrelay-it-sock-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  RelayConfig cfg = pooled("transaction", 1);
  cfg.set("unix_socket_dir", "\"" + dir + "\"");
  cfg.databases += "\n[[hba]]\ntype = \"local\"\nmethod = \"trust\"\n";
  {
    PgrelayProcess relay(cfg);
    const std::string socket = dir + "/.s.PGSQL." + std::to_string(relay.port());
    CHECK(std::filesystem::exists(socket));
    auto r = run_command(std::string(PGRELAY_IT_PSQL) + " -X -w -At -h " + shell_quote(dir) + " -p " +
                         std::to_string(relay.port()) + " -U postgres -d postgres -c 'select 41 + 1'");
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(r.output.find("42") != std::string::npos);
    // The rule is for local connections only: over TCP no rule matches.
    Conn tcp = connect(relay.conninfo());
    CHECK(PQstatus(tcp.get()) == CONNECTION_BAD);
    CHECK(std::string(PQerrorMessage(tcp.get())).find("no pgrelay hba rule") != std::string::npos);
    relay.signal(SIGTERM);
    CHECK(relay.wait_exit(10s) == 0);
    CHECK_FALSE(std::filesystem::exists(socket));   // removed at exit
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("shared prepared statements are re-prepared when DDL made elsewhere leaves them stale") {
  Conn d = connect_ok(direct_conninfo());
  REQUIRE(exec(d.get(), "drop table if exists fid_ddl2; create table fid_ddl2 (a int); insert into fid_ddl2 values (1); "
                        "drop type if exists fid_mood2 cascade; create type fid_mood2 as enum ('ok')").ok());
  PgrelayProcess relay(pooled("transaction", 2));
  const std::string text = "select * from fid_ddl2 where a = $1";
  const std::string typed = "select 'ok'::fid_mood2 as m, $1::int as i";
  prepare_on_both_connections(relay, {{"s", text}, {"m", typed}});
  // DDL pgrelay never sees: straight to PostgreSQL (another application, a migration tool).
  REQUIRE(exec(d.get(), "alter table fid_ddl2 add column b text default 'x'").ok());
  REQUIRE(exec(d.get(), "drop type fid_mood2; create type fid_mood2 as enum ('ok')").ok());
  new_clients_prepare(relay, text, 2, 15);
  for (int i = 0; i < 15; ++i) {
    CAPTURE(i);
    Conn c = connect_ok(relay.conninfo());
    REQUIRE(prepare(c.get(), "m", typed) == "");
    Result described(PQdescribePrepared(c.get(), "m"));
    CHECK(PQresultStatus(described.get()) == PGRES_COMMAND_OK);
    CHECK(exec_prepared(c.get(), "m", "1").sqlstate == "");
  }
  // Parse, Bind and Execute in one request up to Sync (libpq pipeline mode; drivers that
  // pipeline a statement's first execution do the same).
  {
    Conn c = connect_ok(relay.conninfo());
    REQUIRE(exec(d.get(), "alter table fid_ddl2 add column c int default 7").ok());
    const char* values[] = {"1"};
    REQUIRE(PQenterPipelineMode(c.get()) == 1);
    REQUIRE(PQsendPrepare(c.get(), "s", text.c_str(), 0, nullptr) == 1);
    REQUIRE(PQsendQueryPrepared(c.get(), "s", 1, values, nullptr, nullptr, 0) == 1);
    REQUIRE(PQpipelineSync(c.get()) == 1);
    Result prepared(PQgetResult(c.get()));
    CHECK(PQresultStatus(prepared.get()) == PGRES_COMMAND_OK);
    CHECK(PQgetResult(c.get()) == nullptr);
    Result rows(PQgetResult(c.get()));
    INFO(PQresultErrorMessage(rows.get()));
    CHECK(PQresultStatus(rows.get()) == PGRES_TUPLES_OK);
    CHECK(PQnfields(rows.get()) == 3);
    CHECK(PQgetResult(c.get()) == nullptr);
    Result sync(PQgetResult(c.get()));
    CHECK(PQresultStatus(sync.get()) == PGRES_PIPELINE_SYNC);
    REQUIRE(PQexitPipelineMode(c.get()) == 1);
  }
  // Inside a transaction block the failed statement has already aborted the transaction: the
  // client sees the error (as a connection that prepared before the DDL would straight to
  // PostgreSQL), and the next transaction works.
  {
    Conn c = connect_ok(relay.conninfo());
    REQUIRE(prepare(c.get(), "s", text) == "");
    REQUIRE(exec(d.get(), "alter table fid_ddl2 drop column c").ok());
    REQUIRE(exec(c.get(), "begin").ok());
    (void)exec_prepared(c.get(), "s", "1");   // 0A000 here, or rows if the retry raced ahead
    REQUIRE(exec(c.get(), "rollback").ok());
    auto after = exec_prepared(c.get(), "s", "1");
    CHECK(after.sqlstate == "");
    REQUIRE(after.rows.size() == 1);
    CHECK(after.rows[0].size() == 2);
  }
}

TEST_CASE("settings changed inside a DO block or a procedure follow their client and never reach the next one") {
  run_direct("create or replace procedure fid_setter(v text) language plpgsql as "
             "$$ begin execute format('set work_mem = %L', v); end $$");
  TwoClients clients("transaction", 1);
  auto& [relay, a, b] = clients;
  // Neither SET is visible in the text: EXECUTE of a string, and a procedure's body.
  REQUIRE(exec(a.get(), "DO $$ BEGIN EXECUTE 'SET enable_bitmapscan = off'; END $$").ok());
  CHECK(scalar(b.get(), "show enable_bitmapscan") == "on");
  CHECK(scalar(a.get(), "show enable_bitmapscan") == "off");
  REQUIRE(exec(a.get(), "CALL fid_setter('3MB')").ok());
  CHECK(scalar(b.get(), "show work_mem") == "4MB");
  CHECK(scalar(a.get(), "show work_mem") == "3MB");
  CHECK(scalar(a.get(), "show enable_bitmapscan") == "off");
  // Over the extended protocol too.
  REQUIRE(exec_params(a.get(), "CALL fid_setter($1)", {"5MB"}).ok());
  CHECK(scalar(b.get(), "show work_mem") == "4MB");
  CHECK(scalar(a.get(), "show work_mem") == "5MB");
  // Undone by a rollback: nothing changes for anyone.
  REQUIRE(exec(a.get(), "begin").ok());
  REQUIRE(exec(a.get(), "DO $$ BEGIN EXECUTE 'SET enable_seqscan = off'; END $$").ok());
  REQUIRE(exec(a.get(), "rollback").ok());
  CHECK(scalar(a.get(), "show enable_seqscan") == "on");
  CHECK(scalar(b.get(), "show enable_seqscan") == "on");
  // A RESET inside code is seen as well.
  REQUIRE(exec(a.get(), "DO $$ BEGIN EXECUTE 'RESET enable_bitmapscan'; END $$").ok());
  CHECK(scalar(b.get(), "show work_mem") == "4MB");
  CHECK(scalar(a.get(), "show enable_bitmapscan") == "on");
  CHECK(scalar(a.get(), "show work_mem") == "5MB");
  // A client that leaves: the next one on the connection starts clean.
  a.reset();
  Conn c = connect_ok(relay.conninfo());
  CHECK(scalar(c.get(), "show work_mem") == "4MB");
  CHECK(scalar(c.get(), "show enable_bitmapscan") == "on");
}

TEST_CASE("currval() and lastval() never return another session's number: right in their transaction, refused across") {
  run_direct("drop table if exists fid_seq; create table fid_seq (id serial primary key, v text); "
             "drop sequence if exists fid_s; create sequence fid_s");
  TwoClients clients("transaction", 1);
  auto& [relay, a, b] = clients;
  // Autocommit INSERT, then lastval() in the next transaction: on a shared connection that is
  // whoever inserted last (here B). An honest refusal instead.
  REQUIRE(exec(a.get(), "insert into fid_seq (v) values ('a')").ok());
  REQUIRE(exec(b.get(), "insert into fid_seq (v) values ('b')").ok());
  auto across = exec(a.get(), "select lastval()");
  CHECK(across.sqlstate == "0A000");
  CHECK(across.message.find("earlier transaction") != std::string::npos);
  CHECK(exec(a.get(), "select currval('fid_seq_id_seq')").sqlstate == "0A000");
  CHECK(exec_params(a.get(), "select currval('fid_seq_id_seq')", {}).sqlstate == "0A000");
  // In the same Query text or transaction as the INSERT: PostgreSQL's own answer.
  CHECK(scalar(a.get(), "insert into fid_seq (v) values ('a2'); select lastval() = (select id from fid_seq where v = 'a2')") == "t");
  REQUIRE(exec(a.get(), "begin").ok());
  REQUIRE(exec(a.get(), "insert into fid_seq (v) values ('a3')").ok());
  CHECK(scalar(a.get(), "select currval('fid_seq_id_seq') = (select id from fid_seq where v = 'a3')") == "t");
  REQUIRE(exec(a.get(), "commit").ok());
  CHECK(scalar(a.get(), "select nextval('fid_s') = currval('fid_s')") == "t");
  CHECK(exec(a.get(), "select currval('fid_s')").sqlstate == "0A000");
  REQUIRE(exec(a.get(), "discard sequences").ok());
  CHECK(exec(a.get(), "select lastval()").sqlstate == "0A000");
  // A pinned client keeps its connection: its sequence state is its own.
  REQUIRE(exec(a.get(), "create temp table fid_pin (x int)").ok());
  const std::string n = scalar(a.get(), "select nextval('fid_s')");
  REQUIRE(exec(b.get(), "select 1").ok());
  CHECK(scalar(a.get(), "select currval('fid_s')") == n);
  // Session pooling: the connection is the client's, nothing is refused.
  PgrelayProcess session(pooled("session", 2));
  Conn s = connect_ok(session.conninfo());
  const std::string m = scalar(s.get(), "select nextval('fid_s')");
  CHECK(scalar(s.get(), "select currval('fid_s')") == m);
}
