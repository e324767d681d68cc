// SessionTracker: which statements pin a client, which SETs it replays, and when clears take hold.
#include <doctest/doctest.h>

#include "analyzer/session_state.h"
#include "proxy/request/session_tracker.h"
#include "proxy/request/statement_analysis.h"

using namespace pgrelay::proxy;
using pgrelay::analyzer::classify_session_effects;

namespace {
const ParamMap kReported{{"TimeZone", "UTC"}, {"application_name", ""}, {"DateStyle", "ISO, MDY"}};

// As the session sends it: the text's effects and its transaction control, from one analysis.
void send(SessionTracker& t, const char* sql) {
  auto a = analyze_statement(sql);
  (void)t.on_sent(a->effects, kReported, a->tx_controls);
}
std::string set_of(const SessionTracker& t, const std::string& name) {
  if (!t.sets() || !t.sets()->count(name)) return "<none>";
  return t.sets()->at(name).as_sql();
}
}  // namespace

TEST_CASE("a SET of an unreported parameter is replayed, not pinned, once its transaction commits") {
  SessionTracker t;
  send(t, "SET statement_timeout = '5s'");
  CHECK_FALSE(t.pinned());
  CHECK(t.sets() == nullptr);   // not yet: the statement has not completed
  CHECK(t.on_ready('I').sets_changed);
  REQUIRE(t.sets() != nullptr);
  CHECK_FALSE(t.on_ready('I').sets_changed);   // nothing new
  CHECK(t.sets()->at("statement_timeout").as_sql() == "'5s'");
  // set_config's decoded value is quoted for replay.
  send(t, "select set_config('work_mem', '64MB', false)");
  t.on_ready('I');
  CHECK(t.sets()->at("work_mem").as_sql() == "E'64MB'");
}

TEST_CASE("a SET of a reported parameter travels with ParameterStatus instead") {
  SessionTracker t;
  send(t, "SET TimeZone = 'Europe/Paris'");
  t.on_ready('I');
  CHECK(t.sets() == nullptr);
}

TEST_CASE("a failed transaction drops its SETs and clears; pins stay") {
  SessionTracker t;
  send(t, "begin");
  send(t, "SET work_mem = '1MB'");
  send(t, "LISTEN jobs");
  CHECK(t.pinned());
  CHECK(t.on_ready('T').reset_names.empty());
  t.on_error();
  t.on_ready('E');
  t.on_ready('I');   // ROLLBACK
  CHECK(t.sets() == nullptr);
  CHECK(t.pinned());   // LISTEN pinned at once; conservative when it did not happen
  CHECK(t.pin_reason() == "LISTEN");
}

TEST_CASE("pins and the statements that clear them") {
  struct Case { const char* pin; const char* clear; const char* reason; };
  for (const Case& c : {Case{"SET ROLE app_reader", "RESET ROLE", "SET ROLE"},
                        Case{"SET SESSION AUTHORIZATION bob", "RESET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION"},
                        Case{"CREATE TEMP TABLE t (x int)", "DISCARD TEMP", "temporary table"},
                        Case{"PREPARE q AS select 1", "DEALLOCATE q", "SQL PREPARE"},
                        Case{"DECLARE c CURSOR WITH HOLD FOR select 1", "CLOSE c", "WITH HOLD cursor"},
                        Case{"LISTEN jobs", "UNLISTEN *", "LISTEN"},
                        Case{"select pg_advisory_lock(42)", "select pg_advisory_unlock_all()", "session advisory lock"},
                        Case{"SET search_path FROM CURRENT", "RESET search_path", "SET FROM CURRENT"}}) {
    CAPTURE(c.pin);
    SessionTracker t;
    CHECK(t.on_sent(classify_session_effects(c.pin), kReported));   // newly pinned
    CHECK(t.pin_reason() == c.reason);
    CHECK_FALSE(t.on_ready('I').unpinned);
    send(t, c.clear);
    CHECK(t.pinned());   // a clear takes hold when it has run
    CHECK(t.on_ready('I').unpinned);
    CHECK_FALSE(t.pinned());
    CHECK_FALSE(t.needs_close());
  }
}

TEST_CASE("DISCARD ALL clears every pin and setting but a LOAD, which needs the connection closed") {
  SessionTracker t;
  send(t, "SET ROLE x; LISTEN a; PREPARE p AS select 1; SET work_mem = '2MB'");
  t.on_ready('I');
  send(t, "LOAD 'auto_explain'");
  send(t, "DISCARD ALL");
  auto settled = t.on_ready('I');
  CHECK(settled.reset_all);
  CHECK(t.sets() == nullptr);
  CHECK(t.pinned());   // the library stays loaded
  CHECK(t.needs_close());
  CHECK(t.pin_reason() == "LOAD");
}

TEST_CASE("RESET reports what went back to the server default; RESET ALL keeps the role") {
  SessionTracker t;
  send(t, "SET statement_timeout = 10; SET lock_timeout = 20; SET ROLE r");
  t.on_ready('I');
  send(t, "RESET statement_timeout");
  auto one = t.on_ready('I');
  CHECK(one.reset_names == std::vector<std::string>{"statement_timeout"});
  CHECK(t.sets()->count("statement_timeout") == 0);
  CHECK(t.sets()->count("lock_timeout") == 1);
  send(t, "RESET ALL");
  auto all = t.on_ready('I');
  CHECK(all.reset_all);
  CHECK(t.sets() == nullptr);
  CHECK(t.pin_reason() == "SET ROLE");
}

TEST_CASE("first_pinning picks the first state-pinning effect, not settings") {
  CHECK_FALSE(SessionTracker::first_pinning(classify_session_effects("SET work_mem = 1; RESET ALL")));
  auto pin = SessionTracker::first_pinning(classify_session_effects("SET work_mem = 1; SET ROLE x; LISTEN y"));
  REQUIRE(pin);
  CHECK(pin->kind == pgrelay::analyzer::EffectKind::kSetRole);
  CHECK_FALSE(SessionTracker::first_pinning(classify_session_effects("select 1")));
}

TEST_CASE("ROLLBACK, ABORT and ROLLBACK AND CHAIN undo the transaction's SETs; COMMIT keeps them") {
  for (const char* end : {"rollback", "ABORT", "rollback work", "rollback and chain"}) {
    CAPTURE(end);
    SessionTracker t;
    send(t, "SET work_mem = '1MB'");
    t.on_ready('I');
    send(t, "begin");
    send(t, "SET search_path = s1");
    send(t, "select set_config('work_mem', '2MB', false)");
    send(t, "RESET work_mem");
    send(t, end);
    t.on_ready(std::string(end).find("chain") != std::string::npos ? 'T' : 'I');
    t.on_ready('I');
    CHECK(set_of(t, "search_path") == "<none>");
    CHECK(set_of(t, "work_mem") == "'1MB'");   // the RESET was rolled back too
  }
  SessionTracker t;
  send(t, "begin; SET search_path = s1; commit");
  t.on_ready('I');
  CHECK(set_of(t, "search_path") == "s1");
  // In one Query: committed, then a rolled-back transaction.
  send(t, "begin; SET work_mem = '3MB'; commit; begin; SET search_path = s2; rollback");
  t.on_ready('I');
  CHECK(set_of(t, "work_mem") == "'3MB'");
  CHECK(set_of(t, "search_path") == "s1");
}

TEST_CASE("a completed COMMIT settles what came before it, whatever happens to the transaction after it") {
  SessionTracker t;
  // COMMIT AND CHAIN, then the chained transaction fails and ends.
  send(t, "begin");
  send(t, "SET work_mem = '3MB'");
  send(t, "commit and chain");
  t.on_committed();
  t.on_ready('T');
  send(t, "SET search_path = s2");
  send(t, "select 1/0");
  t.on_error();
  t.on_ready('E');
  send(t, "commit");   // in a failed transaction: ROLLBACK, no on_committed
  t.on_ready('I');
  CHECK(set_of(t, "work_mem") == "'3MB'");
  CHECK(set_of(t, "search_path") == "<none>");
  // One Query: a committed SET, then an error further on.
  send(t, "begin; SET statement_timeout = '7s'; commit; select 1/0");
  t.on_committed();
  t.on_error();
  t.on_ready('I');
  CHECK(set_of(t, "statement_timeout") == "'7s'");
  // A savepoint rolled back before the chained commit: the commit keeps only what survived it.
  send(t, "begin; SET lock_timeout = '1s'; savepoint a; SET work_mem = '9MB'; rollback to a; commit and chain");
  t.on_committed();
  send(t, "rollback");
  t.on_ready('I');
  CHECK(set_of(t, "lock_timeout") == "'1s'");
  CHECK(set_of(t, "work_mem") == "'3MB'");
  // COMMIT AND CHAIN of a failed transaction is its ROLLBACK: its SETs go, the chained ones stay.
  send(t, "begin");
  send(t, "SET search_path = s9");
  send(t, "select 1/0");
  t.on_error();
  t.on_ready('E');
  send(t, "commit and chain");   // answered ROLLBACK: no on_committed
  t.on_ready('T');
  send(t, "SET work_mem = '5MB'");
  send(t, "commit");
  t.on_committed();
  t.on_ready('I');
  CHECK(set_of(t, "search_path") == "<none>");
  CHECK(set_of(t, "work_mem") == "'5MB'");
  // An on_committed with no commit marker changes nothing.
  t.on_committed();
  CHECK(set_of(t, "lock_timeout") == "'1s'");
}

TEST_CASE("ROLLBACK TO SAVEPOINT undoes what came after the savepoint; RELEASE keeps it") {
  SessionTracker t;
  send(t, "begin");
  send(t, "SET work_mem = '1MB'");
  send(t, "savepoint a");
  send(t, "SET search_path = s1");
  send(t, "savepoint b");
  send(t, "SET statement_timeout = '5s'");
  send(t, "rollback to savepoint a");
  send(t, "SET lock_timeout = '1s'");
  send(t, "commit");
  t.on_ready('I');
  CHECK(set_of(t, "work_mem") == "'1MB'");
  CHECK(set_of(t, "search_path") == "<none>");
  CHECK(set_of(t, "statement_timeout") == "<none>");
  CHECK(set_of(t, "lock_timeout") == "'1s'");

  send(t, "begin; savepoint \"Q\"; SET search_path = s3; release savepoint \"Q\"; commit");
  t.on_ready('I');
  CHECK(set_of(t, "search_path") == "s3");
  // A failed transaction recovered by ROLLBACK TO keeps what came before the savepoint.
  send(t, "begin");
  send(t, "SET work_mem = '9MB'");
  send(t, "savepoint s");
  send(t, "SET search_path = s4");
  t.on_error();
  send(t, "rollback to s");
  send(t, "commit");
  t.on_ready('I');
  CHECK(set_of(t, "work_mem") == "'9MB'");
  CHECK(set_of(t, "search_path") == "s3");
}

TEST_CASE("DEALLOCATE and CLOSE hold through a rollback, as PostgreSQL does not undo them") {
  SessionTracker t;
  send(t, "PREPARE p AS select 1");
  t.on_ready('I');
  REQUIRE(t.pinned());
  send(t, "begin");
  send(t, "DEALLOCATE p");
  send(t, "rollback");
  t.on_ready('I');
  CHECK_FALSE(t.pinned());
}

TEST_CASE("adopt_settings: the server's list replaces the remembered SETs; the same list changes nothing") {
  SessionTracker t;
  SessionSets truth{{"work_mem", WantedValue{"3072", false}}, {"timezone", WantedValue{"UTC", false}}};
  const ParamMap reported{{"TimeZone", "UTC"}};
  CHECK(t.adopt_settings(truth, reported));
  REQUIRE(t.sets());
  CHECK(t.sets()->at("work_mem").value == "3072");
  CHECK(t.sets()->count("timezone") == 0);   // reported: it travels with ParameterStatus
  const auto before = t.sets();
  CHECK_FALSE(t.adopt_settings(truth, reported));
  CHECK(t.sets() == before);   // same map: server connections carrying it need no re-SET
  CHECK(t.adopt_settings({}, reported));
  CHECK(t.sets() == nullptr);
  CHECK_FALSE(t.pinned());
}

TEST_CASE("settles_nothing: false while a SET, a RESET or a commit waits for its ReadyForQuery") {
  SessionTracker t;
  CHECK(t.settles_nothing());
  send(t, "select 1");   // a plain read leaves nothing for on_ready()
  CHECK(t.settles_nothing());
  send(t, "RESET statement_timeout");
  CHECK_FALSE(t.settles_nothing());
  CHECK_FALSE(t.on_ready('T').reset_names.size());   // inside the transaction: still waiting
  CHECK_FALSE(t.settles_nothing());
  CHECK(t.on_ready('I').reset_names == std::vector<std::string>{"statement_timeout"});
  CHECK(t.settles_nothing());
  send(t, "SET work_mem = '8MB'");
  t.on_committed();
  CHECK_FALSE(t.settles_nothing());
  t.on_ready('I');
  CHECK(t.settles_nothing());
}
