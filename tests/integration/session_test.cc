// Session pooling end to end: simple and extended queries, pipelines, COPY, LISTEN/NOTIFY, notices,
// transaction errors and the reset of server state between clients.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "harness.h"

using namespace pgrelay::it;

namespace {

// One pgrelay for the whole file; started on first use.
PgrelayProcess& relay() {
  static PgrelayProcess p;
  REQUIRE_MESSAGE(p.running(), "pgrelay is not running; log:\n" << p.log());
  return p;
}

Conn client() { return connect_ok(relay().conninfo()); }

}  // namespace

TEST_CASE("psql -c 'select 1' through pgrelay") {
  auto r = run_command(std::string(PGRELAY_IT_PSQL) + " -X -At -h 127.0.0.1 -p " + std::to_string(relay().port()) +
                       " -U postgres -d postgres -c 'select 1'", 30s);
  CHECK(r.exit_code == 0);
  CHECK(r.output == "1\n");
}

TEST_CASE("simple query protocol") {
  Conn c = client();
  CHECK(scalar(c.get(), "select 'hello' || ' world'") == "hello world");

  auto many = exec(c.get(), "select g, repeat('ab', g) from generate_series(1, 5000) g");
  REQUIRE(many.ok());
  REQUIRE(many.rows.size() == 5000);
  CHECK(many.rows[4999][0] == "5000");
  CHECK(many.rows[4999][1]->size() == 10000);

  // Several statements in one Query message: libpq returns the last result.
  CHECK(scalar(c.get(), "select 1; select 2; select 3") == "3");
  auto nul = exec(c.get(), "select null::text");
  REQUIRE(nul.ok());
  CHECK(!nul.rows[0][0].has_value());
  CHECK(exec(c.get(), "").status == PGRES_EMPTY_QUERY);

  // A query text larger than any socket buffer.
  std::string big(1 << 20, 'x');
  CHECK(scalar(c.get(), "select length('" + big + "')") == std::to_string(big.size()));
}

TEST_CASE("extended query protocol") {
  Conn c = client();
  auto q = exec_params(c.get(), "select $1::int * 2, $2::text, $3::text is null", {"21", "two", std::nullopt});
  REQUIRE(q.ok());
  CHECK(q.rows[0][0] == "42");
  CHECK(q.rows[0][1] == "two");
  CHECK(q.rows[0][2] == "t");

  SUBCASE("binary result format") {
    const char* v[] = {"7"};
    Result r(PQexecParams(c.get(), "select $1::int4", 1, nullptr, v, nullptr, nullptr, 1));
    REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    REQUIRE(PQgetlength(r.get(), 0, 0) == 4);
    CHECK(std::string(PQgetvalue(r.get(), 0, 0), 4) == be32(7));
  }
  SUBCASE("named prepared statement, executed several times") {
    Result p(PQprepare(c.get(), "add_one", "select $1::bigint + 1", 1, nullptr));
    REQUIRE(PQresultStatus(p.get()) == PGRES_COMMAND_OK);
    Result d(PQdescribePrepared(c.get(), "add_one"));
    REQUIRE(PQresultStatus(d.get()) == PGRES_COMMAND_OK);
    CHECK(PQnparams(d.get()) == 1);
    CHECK(PQnfields(d.get()) == 1);
    for (int i = 0; i < 5; ++i) {
      std::string arg = std::to_string(i * 100);
      const char* v[] = {arg.c_str()};
      Result r(PQexecPrepared(c.get(), "add_one", 1, v, nullptr, nullptr, 0));
      REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
      CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == std::to_string(i * 100 + 1));
    }
  }
  SUBCASE("an error in the extended protocol leaves the session usable") {
    auto e = exec_params(c.get(), "select $1::int", {"not a number"});
    CHECK(e.sqlstate == "22P02");
    CHECK(scalar(c.get(), "select 5") == "5");
  }
}

TEST_CASE("pipeline mode") {
  Conn c = client();
  REQUIRE(PQenterPipelineMode(c.get()) == 1);
  for (int i = 1; i <= 3; ++i) {
    std::string arg = std::to_string(i);
    const char* v[] = {arg.c_str()};
    REQUIRE(PQsendQueryParams(c.get(), "select $1::int * 10", 1, nullptr, v, nullptr, nullptr, 0) == 1);
  }
  const char* bad[] = {"x"};
  REQUIRE(PQsendQueryParams(c.get(), "select $1::int", 1, nullptr, bad, nullptr, nullptr, 0) == 1);
  REQUIRE(PQsendQueryParams(c.get(), "select 99", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);
  REQUIRE(PQsendQueryParams(c.get(), "select 'after sync'", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);

  for (int i = 1; i <= 3; ++i) {
    Result r(PQgetResult(c.get()));
    REQUIRE(r);
    REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == std::to_string(i * 10));
    CHECK(PQgetResult(c.get()) == nullptr);
  }
  {
    Result r(PQgetResult(c.get()));
    REQUIRE(r);
    CHECK(PQresultStatus(r.get()) == PGRES_FATAL_ERROR);
    CHECK(std::string(PQresultErrorField(r.get(), PG_DIAG_SQLSTATE)) == "22P02");
    CHECK(PQgetResult(c.get()) == nullptr);
  }
  {
    Result r(PQgetResult(c.get()));
    REQUIRE(r);
    CHECK(PQresultStatus(r.get()) == PGRES_PIPELINE_ABORTED);
    CHECK(PQgetResult(c.get()) == nullptr);
  }
  {
    Result r(PQgetResult(c.get()));
    REQUIRE(r);
    CHECK(PQresultStatus(r.get()) == PGRES_PIPELINE_SYNC);
  }
  {
    Result r(PQgetResult(c.get()));
    REQUIRE(r);
    REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "after sync");
    CHECK(PQgetResult(c.get()) == nullptr);
  }
  {
    Result r(PQgetResult(c.get()));
    REQUIRE(r);
    CHECK(PQresultStatus(r.get()) == PGRES_PIPELINE_SYNC);
  }
  REQUIRE(PQexitPipelineMode(c.get()) == 1);
  CHECK(scalar(c.get(), "select 'done'") == "done");
}

TEST_CASE("COPY FROM STDIN and COPY TO STDOUT") {
  Conn c = client();
  REQUIRE(exec(c.get(), "truncate it_copy").ok());

  constexpr int kRows = 20000;
  std::string expected;
  Result start(PQexec(c.get(), "copy it_copy (id, label) from stdin"));
  REQUIRE(PQresultStatus(start.get()) == PGRES_COPY_IN);
  std::string chunk;
  for (int i = 1; i <= kRows; ++i) {
    std::string line = std::to_string(i) + "\tlabel-" + std::to_string(i * 7) + "\n";
    expected += line;
    chunk += line;
    if (chunk.size() > 3000 || i == kRows) {
      REQUIRE(PQputCopyData(c.get(), chunk.data(), static_cast<int>(chunk.size())) == 1);
      chunk.clear();
    }
  }
  REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
  auto done = to_query_result(c.get(), Result(PQgetResult(c.get())).get());
  REQUIRE_MESSAGE(done.ok(), done.message);
  CHECK(done.command_tuples == std::to_string(kRows));
  CHECK(PQgetResult(c.get()) == nullptr);
  CHECK(scalar(c.get(), "select sum(id) from it_copy") == std::to_string(int64_t{kRows} * (kRows + 1) / 2));

  Result out(PQexec(c.get(), "copy (select id, label from it_copy order by id) to stdout"));
  REQUIRE(PQresultStatus(out.get()) == PGRES_COPY_OUT);
  std::string got;
  char* buf = nullptr;
  int n;
  while ((n = PQgetCopyData(c.get(), &buf, 0)) > 0) {
    got.append(buf, static_cast<size_t>(n));
    PQfreemem(buf);
  }
  CHECK(n == -1);
  auto end = to_query_result(c.get(), Result(PQgetResult(c.get())).get());
  CHECK(end.ok());
  CHECK(PQgetResult(c.get()) == nullptr);
  CHECK(got.size() == expected.size());
  CHECK(got == expected);

  SUBCASE("a bad row aborts the COPY, the session goes on") {
    Result s(PQexec(c.get(), "copy it_copy (id, label) from stdin"));
    REQUIRE(PQresultStatus(s.get()) == PGRES_COPY_IN);
    std::string rows = "999999\tok\nnot-a-number\toops\n";
    PQputCopyData(c.get(), rows.data(), static_cast<int>(rows.size()));
    PQputCopyEnd(c.get(), nullptr);
    auto r = to_query_result(c.get(), Result(PQgetResult(c.get())).get());
    CHECK(r.sqlstate == "22P02");
    while (Result extra{PQgetResult(c.get())}) {
    }
    CHECK(scalar(c.get(), "select count(*) from it_copy where id = 999999") == "0");
  }
  SUBCASE("the client aborts a COPY with CopyFail") {
    Result s(PQexec(c.get(), "copy it_copy (id, label) from stdin"));
    REQUIRE(PQresultStatus(s.get()) == PGRES_COPY_IN);
    PQputCopyEnd(c.get(), "client changed its mind");
    auto r = to_query_result(c.get(), Result(PQgetResult(c.get())).get());
    CHECK(r.sqlstate == "57014");
    CHECK(r.message.find("client changed its mind") != std::string::npos);
    while (Result extra{PQgetResult(c.get())}) {
    }
    CHECK(scalar(c.get(), "select 1") == "1");
  }
}

TEST_CASE("LISTEN/NOTIFY between two clients") {
  Conn listener = client();
  Conn notifier = client();
  std::string listener_pid = scalar(listener.get(), "select pg_backend_pid()");
  REQUIRE(exec(listener.get(), "listen it_channel_1").ok());
  REQUIRE(exec(notifier.get(), "notify it_channel_1, 'payload-one'").ok());
  REQUIRE(exec(notifier.get(), "select pg_notify('it_channel_1', 'payload-two')").ok());

  std::vector<std::pair<std::string, std::string>> got;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (got.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    wait_readable(listener.get(), 200ms);
    REQUIRE(PQconsumeInput(listener.get()) == 1);
    while (PGnotify* n = PQnotifies(listener.get())) {
      got.emplace_back(n->relname, n->extra);
      CHECK(std::to_string(n->be_pid) != listener_pid);  // sent by the other session
      PQfreemem(n);
    }
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0] == std::make_pair(std::string("it_channel_1"), std::string("payload-one")));
  CHECK(got[1] == std::make_pair(std::string("it_channel_1"), std::string("payload-two")));
  CHECK(scalar(listener.get(), "select 1") == "1");
}

TEST_CASE("NoticeResponse reaches the client") {
  Conn c = client();
  struct Seen {
    std::vector<std::string> messages, severities, codes;
  } seen;
  PQsetNoticeReceiver(
      c.get(),
      [](void* arg, const PGresult* r) {
        auto* s = static_cast<Seen*>(arg);
        s->messages.emplace_back(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
        s->severities.emplace_back(PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED));
        s->codes.emplace_back(PQresultErrorField(r, PG_DIAG_SQLSTATE));
      },
      &seen);
  REQUIRE(exec(c.get(), "do $$ begin raise notice 'hello %', 42; raise warning 'careful'; end $$").ok());
  REQUIRE(seen.messages.size() == 2);
  CHECK(seen.messages[0] == "hello 42");
  CHECK(seen.severities[0] == "NOTICE");
  CHECK(seen.codes[0] == "00000");
  CHECK(seen.messages[1] == "careful");
  CHECK(seen.severities[1] == "WARNING");
  CHECK(seen.codes[1] == "01000");
}

TEST_CASE("an error inside a transaction aborts it until ROLLBACK") {
  Conn c = client();
  REQUIRE(exec(c.get(), "begin").ok());
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_INTRANS);
  auto e = exec(c.get(), "select 1/0");
  CHECK(e.sqlstate == "22012");
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_INERROR);
  auto aborted = exec(c.get(), "select 1");
  CHECK(aborted.sqlstate == "25P02");
  REQUIRE(exec(c.get(), "rollback").ok());
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_IDLE);
  CHECK(scalar(c.get(), "select 2") == "2");

  // A committed transaction's effect is visible to another client.
  REQUIRE(exec(c.get(), "begin; insert into it_copy values (-1, 'txn'); commit").ok());
  Conn other = client();
  CHECK(scalar(other.get(), "select label from it_copy where id = -1") == "txn");
  REQUIRE(exec(other.get(), "delete from it_copy where id = -1").ok());
}

TEST_CASE("session state is reset before the server connection is reused") {
  // pool_size 1: the second client must get the first client's server connection.
  RelayConfig cfg;
  cfg.set("pool_size", "1");
  PgrelayProcess own(cfg);

  std::string first_pid;
  {
    Conn c1 = connect_ok(own.conninfo());
    first_pid = scalar(c1.get(), "select pg_backend_pid()");
    REQUIRE(exec(c1.get(), "set statement_timeout = '1234s'").ok());
    REQUIRE(exec(c1.get(), "set application_name = 'client-one'").ok());
    REQUIRE(exec(c1.get(), "create temp table it_session_tmp (x int)").ok());
    REQUIRE(exec(c1.get(), "prepare it_stmt as select 1").ok());
    REQUIRE(exec(c1.get(), "listen it_session_channel").ok());
    CHECK(scalar(c1.get(), "show statement_timeout") == "1234s");
  }
  Conn c2 = connect_ok(own.conninfo());
  CHECK(scalar(c2.get(), "select pg_backend_pid()") == first_pid);
  CHECK(scalar(c2.get(), "show statement_timeout") == "0");
  CHECK(scalar(c2.get(), "select to_regclass('it_session_tmp') is null") == "t");
  CHECK(scalar(c2.get(), "select count(*) from pg_prepared_statements") == "0");
  CHECK(scalar(c2.get(), "select count(*) from pg_listening_channels()") == "0");
  CHECK(scalar(c2.get(), "show application_name") != "client-one");
}

TEST_CASE("clients beyond pool_size wait for a server connection") {
  RelayConfig cfg;
  cfg.set("pool_size", "1").set("query_wait_timeout", "\"10s\"");
  PgrelayProcess own(cfg);
  Conn holder = connect_ok(own.conninfo());
  REQUIRE(scalar(holder.get(), "select 1") == "1");

  std::string waiter_result;
  std::atomic<bool> finished{false};
  std::thread waiter([&] {
    try {
      Conn w = connect_ok(own.conninfo());
      waiter_result = scalar(w.get(), "select 'waited'");
    } catch (const std::exception& e) {
      waiter_result = e.what();
    }
    finished = true;
  });
  std::this_thread::sleep_for(500ms);
  CHECK_FALSE(finished.load());  // still waiting: the only server connection is held
  holder.reset();
  waiter.join();
  CHECK(waiter_result == "waited");
}

TEST_CASE("a client waiting longer than query_wait_timeout gets an error, not a hang") {
  RelayConfig cfg;
  cfg.set("pool_size", "1").set("query_wait_timeout", "\"1s\"");
  PgrelayProcess own(cfg);
  Conn holder = connect_ok(own.conninfo());
  REQUIRE(scalar(holder.get(), "select 1") == "1");

  auto start = std::chrono::steady_clock::now();
  Conn waiter = connect(own.conninfo());
  std::string error;
  if (PQstatus(waiter.get()) != CONNECTION_OK) {
    error = PQerrorMessage(waiter.get());
  } else {
    auto q = exec(waiter.get(), "select 1");
    CHECK_FALSE(q.ok());
    error = q.sqlstate + " " + q.message;
  }
  auto waited = std::chrono::steady_clock::now() - start;
  MESSAGE("waiter got: " << error);
  CHECK(waited >= 800ms);
  CHECK(waited <= 4s);
  CHECK(scalar(holder.get(), "select 'holder unaffected'") == "holder unaffected");
}

TEST_CASE("cancelling a running query through pgrelay") {
  Conn c = client();
  REQUIRE(PQsendQuery(c.get(), "select pg_sleep(10)") == 1);
  std::this_thread::sleep_for(300ms);
  PGcancel* cancel = PQgetCancel(c.get());
  REQUIRE(cancel != nullptr);
  char err[256] = {0};
  auto start = std::chrono::steady_clock::now();
  CHECK_MESSAGE(PQcancel(cancel, err, sizeof err) == 1, err);
  PQfreeCancel(cancel);
  auto q = to_query_result(c.get(), Result(PQgetResult(c.get())).get());
  while (Result extra{PQgetResult(c.get())}) {
  }
  CHECK(q.sqlstate == "57014");
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(scalar(c.get(), "select 'still usable'") == "still usable");
}

TEST_CASE("a server connection killed mid-session: the client gets an error, others go on") {
  Conn victim = client();
  std::string pid = scalar(victim.get(), "select pg_backend_pid()");
  REQUIRE(exec(victim.get(), "begin").ok());
  Conn admin = connect_ok(direct_conninfo());
  REQUIRE(scalar(admin.get(), "select pg_terminate_backend(" + pid + ")") == "t");
  std::this_thread::sleep_for(200ms);
  auto start = std::chrono::steady_clock::now();
  auto q = exec(victim.get(), "select 1");
  CHECK_FALSE(q.ok());
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  MESSAGE("victim got: " << q.sqlstate << " " << q.message);

  Conn fresh = client();
  CHECK(scalar(fresh.get(), "select 1") == "1");
  CHECK(scalar(fresh.get(), "select pg_backend_pid()") != pid);
}
