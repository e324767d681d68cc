// Session-state classifier: each recognised statement and its negatives, statement classes, the pre-scan, random input.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "analyzer/session_state.h"

using namespace pgrelay::analyzer;

namespace {

bool same(const SessionEffects& a, const SessionEffects& b) {
  if (a.effects() != b.effects() || a.statement_count() != b.statement_count()) return false;
  for (size_t i = 0; i < a.statement_count(); ++i)
    if (a.statement_class(i) != b.statement_class(i)) return false;
  return true;
}

std::string describe(const Effect& e) {
  std::string s(feature_name(e.kind));
  if (!e.name.empty()) s += " " + e.name;
  if (!e.value.empty()) s += "=" + e.value;
  if (e.via_set_config) s += " (set_config)";
  if (e.statement != 0) s += " @" + std::to_string(e.statement);
  return s;
}

// The effects of `sql` as "feature name=value; ...", after checking that the pre-scan path and
// the full path agree, and that a text the pre-scan clears really has no effect.
std::string fx(std::string_view sql, LexOptions options = {}) {
  const SessionEffects fast = classify_session_effects(sql, options);
  const SessionEffects slow = classify_session_effects_slowly(sql, options);
  CHECK(same(fast, slow));
  if (!may_have_session_effects(sql, options)) CHECK_FALSE(slow.any());
  std::string out;
  for (const Effect& e : slow.effects()) {
    if (!out.empty()) out += "; ";
    out += describe(e);
  }
  CHECK(slow.any() == !out.empty());
  return out;
}

// The statement classes of `sql`, comma-separated.
std::string classes(std::string_view sql) {
  const SessionEffects r = classify_session_effects(sql);
  CHECK(same(r, classify_session_effects_slowly(sql)));
  std::string out;
  for (size_t i = 0; i < r.statement_count(); ++i) {
    if (i) out += ",";
    out += class_name(r.statement_class(i));
  }
  return out;
}

}  // namespace

TEST_CASE("SET: generic forms, names folded, values as written") {
  CHECK(fx("SET search_path TO a, \"B\"") == "SET search_path=a, \"B\"");
  CHECK(fx("set SESSION DateStyle = 'ISO, MDY'") == "SET datestyle='ISO, MDY'");
  CHECK(fx("SET \"MyApp\".\"Var\" TO 'v'") == "SET myapp.var='v'");
  CHECK(fx("SET statement_timeout = 5000") == "SET statement_timeout=5000");
  CHECK(fx("SET work_mem TO DEFAULT") == "RESET work_mem");
  CHECK(fx("SET statement_timeout FROM CURRENT") == "SET FROM CURRENT statement_timeout");
}

TEST_CASE("SET: special forms map to their parameters") {
  CHECK(fx("SET TIME ZONE 'Europe/Paris'") == "SET timezone='Europe/Paris'");
  CHECK(fx("set time zone interval '-08:00' hour to minute") == "SET timezone=interval '-08:00' hour to minute");
  CHECK(fx("SET TIME ZONE LOCAL") == "RESET timezone");
  CHECK(fx("SET TIME ZONE DEFAULT") == "RESET timezone");
  CHECK(fx("SET SCHEMA 'app'") == "SET search_path='app'");
  CHECK(fx("SET NAMES 'UTF8'") == "SET client_encoding='UTF8'");
  CHECK(fx("SET NAMES") == "RESET client_encoding");
  CHECK(fx("SET XML OPTION DOCUMENT") == "SET xmloption=DOCUMENT");
  CHECK(fx("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY, NOT DEFERRABLE") ==
        "SET default_transaction_isolation='repeatable read'; SET default_transaction_read_only=on; "
        "SET default_transaction_deferrable=off");
  CHECK(fx("set session characteristics as transaction read write deferrable isolation level serializable") ==
        "SET default_transaction_read_only=off; SET default_transaction_deferrable=on; "
        "SET default_transaction_isolation='serializable'");
}

TEST_CASE("SET ROLE and SET SESSION AUTHORIZATION") {
  CHECK(fx("SET ROLE admin") == "SET ROLE role=admin");
  CHECK(fx("SET SESSION ROLE 'Admin'") == "SET ROLE role='Admin'");
  CHECK(fx("set role = reporting") == "SET ROLE role=reporting");
  CHECK(fx("SET ROLE NONE") == "RESET ROLE");
  CHECK(fx("SET ROLE 'none'") == "RESET ROLE");
  CHECK(fx("set role to default") == "RESET ROLE");
  CHECK(fx("SET ROLE 'NONE'") == "SET ROLE role='NONE'");               // a role named NONE
  CHECK(fx("RESET ROLE") == "RESET ROLE");
  CHECK(fx("SET SESSION AUTHORIZATION alice") == "SET SESSION AUTHORIZATION session_authorization=alice");
  CHECK(fx("SET SESSION AUTHORIZATION DEFAULT") == "RESET SESSION AUTHORIZATION");
  CHECK(fx("RESET SESSION AUTHORIZATION") == "RESET SESSION AUTHORIZATION");
  const SessionEffects r = classify_session_effects("SET ROLE admin");
  REQUIRE(r.any());
  CHECK(r.first().kind == EffectKind::kSetRole);
  CHECK(r.has(EffectKind::kSetRole));
  CHECK_FALSE(r.has(EffectKind::kSetParameter));
}

TEST_CASE("SET LOCAL, SET TRANSACTION and transaction-scoped settings leave nothing") {
  CHECK(fx("SET LOCAL statement_timeout = 5") == "");
  CHECK(fx("set local role admin") == "");
  CHECK(fx("SET LOCAL TIME ZONE 'UTC'") == "");
  CHECK(fx("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE") == "");
  CHECK(fx("SET CONSTRAINTS ALL DEFERRED") == "");
  CHECK(fx("SET transaction_read_only = on") == "");
  CHECK(fx("RESET TRANSACTION ISOLATION LEVEL") == "");
  CHECK(classes("SET LOCAL x = 1") == "session");
}

TEST_CASE("RESET name and RESET ALL") {
  CHECK(fx("RESET work_mem") == "RESET work_mem");
  CHECK(fx("reset \"Search_Path\"") == "RESET search_path");
  CHECK(fx("RESET TIME ZONE") == "RESET timezone");
  CHECK(fx("RESET ALL") == "RESET ALL");
}

TEST_CASE("set_config: literal false sets, literal true does not, anything else is reported generically") {
  CHECK(fx("select set_config('search_path', 'a, b', false)") == "SET search_path=a, b (set_config)");
  CHECK(fx("SELECT pg_catalog.set_config('MyApp.User', 'it''s', 'f')") == "SET myapp.user=it's (set_config)");
  CHECK(fx("select set_config('a.b', 'c', 0)") == "SET a.b=c (set_config)");
  CHECK(fx("select set_config('a.b', $$c$$, 'off')") == "SET a.b=c (set_config)");
  CHECK(fx("select * from t where set_config('a.b', 'c', FALSE) is not null") == "SET a.b=c (set_config)");
  CHECK(fx("select \"set_config\"('a.b', 'c', false)") == "SET a.b=c (set_config)");
  CHECK(fx("select set_config('a.b', 'c', true)") == "");
  CHECK(fx("select set_config('a.b', 'c', 't')") == "");
  CHECK(fx("select set_config('a.b', 'c', 1)") == "");
  CHECK(fx("select set_config('a.b', $1, false)") == "set_config with non-literal arguments a.b");
  CHECK(fx("select set_config($1, $2, $3)") == "set_config with non-literal arguments");
  CHECK(fx("select set_config('a.b', 'c', $3)") == "set_config with non-literal arguments a.b");
  CHECK(fx("select set_config('a.b', 'c', false::bool)") == "set_config with non-literal arguments a.b");
  CHECK(fx("select set_config('a.b', 'c')") == "set_config with non-literal arguments a.b");
  CHECK(fx("select set_config('role', 'bob', false)") == "SET ROLE role=bob (set_config)");
  CHECK(fx("select set_config('transaction_isolation', 'serializable', false)") == "");
  CHECK(fx("select 'set_config(''a'', ''b'', false)'") == "");
  CHECK(fx("select my_set_config('a', 'b', false)") == "");
}

TEST_CASE("temporary tables and objects") {
  CHECK(fx("CREATE TEMP TABLE t (a int)") == "temporary table t=table");
  CHECK(fx("create local temporary table if not exists \"T\" (a int)") == "temporary table T=table");
  CHECK(fx("CREATE GLOBAL TEMP TABLE g AS SELECT 1") == "temporary table g=table");
  CHECK(fx("CREATE TEMP TABLE t (a int) ON COMMIT DELETE ROWS") == "temporary table t=table");
  CHECK(fx("CREATE TEMPORARY SEQUENCE s") == "temporary object s=sequence");
  CHECK(fx("CREATE OR REPLACE TEMP VIEW v AS SELECT 1") == "temporary object v=view");
  CHECK(fx("create temp recursive view r(n) as select 1") == "temporary object r=view");
  CHECK(fx("CREATE TABLE pg_temp.t (a int)") == "temporary table pg_temp.t=table");
  CHECK(fx("CREATE FUNCTION pg_temp.f() RETURNS int AS 'select 1' LANGUAGE sql") ==
        "temporary object pg_temp.f=function");
  CHECK(fx("SELECT * INTO TEMP t2 FROM t") == "temporary table t2=table");
  CHECK(fx("select 1 as a into temporary table t3") == "temporary table t3=table");
  CHECK(fx("SELECT a INTO pg_temp.t4 FROM t") == "temporary table pg_temp.t4=table");
  CHECK(fx("select 1into temp t5") == "temporary table t5=table");       // read as 1 INTO, like PostgreSQL < 15
  CHECK(fx("EXPLAIN ANALYZE SELECT 1 INTO TEMP t6") == "temporary table t6=table");
}

TEST_CASE("temporary objects: the negatives") {
  CHECK(fx("CREATE TEMP TABLE t (a int) ON COMMIT DROP") == "");
  CHECK(fx("CREATE TABLE temp (a int)") == "");
  CHECK(fx("CREATE TABLE tempdata (a int)") == "");
  CHECK(fx("SELECT a INTO t FROM x") == "");
  CHECK(fx("insert into temp_log values (1)") == "");
  CHECK(fx("insert into pg_temp.t values (1)") == "");
  CHECK(fx("EXPLAIN SELECT 1 INTO TEMP t6") == "");                    // planned, not run
  CHECK(fx("select 'create temp table x'") == "");
}

TEST_CASE("SQL PREPARE and DEALLOCATE") {
  CHECK(fx("PREPARE q(int) AS SELECT $1") == "SQL PREPARE q");
  CHECK(fx("prepare \"Q\" as select 1") == "SQL PREPARE Q");
  CHECK(fx("DEALLOCATE q") == "DEALLOCATE q");
  CHECK(fx("DEALLOCATE PREPARE q") == "DEALLOCATE q");
  CHECK(fx("DEALLOCATE ALL") == "DEALLOCATE ALL");
  CHECK(fx("deallocate prepare all") == "DEALLOCATE ALL");
  CHECK(fx("PREPARE TRANSACTION 'tx1'") == "");
  CHECK(classes("PREPARE TRANSACTION 'tx1'; COMMIT PREPARED 'tx1'; ROLLBACK PREPARED 'tx2'") ==
        "transaction control,transaction control,transaction control");
}

TEST_CASE("cursors WITH HOLD and CLOSE") {
  CHECK(fx("DECLARE c CURSOR WITH HOLD FOR SELECT 1") == "WITH HOLD cursor c");
  CHECK(fx("declare \"C\" binary insensitive no scroll cursor with hold for select * from t") == "WITH HOLD cursor C");
  CHECK(fx("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1") == "");
  CHECK(fx("DECLARE c CURSOR FOR SELECT 1") == "");
  CHECK(fx("DECLARE c CURSOR FOR SELECT 'with hold'") == "");
  CHECK(fx("CLOSE c") == "CLOSE c");
  CHECK(fx("CLOSE ALL") == "CLOSE ALL");
}

TEST_CASE("LISTEN, UNLISTEN, LOAD, DISCARD") {
  CHECK(fx("LISTEN jobs") == "LISTEN jobs");
  CHECK(fx("listen \"Jobs\"") == "LISTEN Jobs");
  CHECK(fx("UNLISTEN jobs") == "UNLISTEN jobs");
  CHECK(fx("UNLISTEN *") == "UNLISTEN *");
  CHECK(fx("NOTIFY jobs, 'x'") == "");
  CHECK(fx("LOAD 'auto_explain'") == "LOAD auto_explain");
  CHECK(fx("DISCARD ALL") == "DISCARD ALL");
  CHECK(fx("discard temp") == "DISCARD TEMP");
  CHECK(fx("DISCARD TEMPORARY") == "DISCARD TEMP");
  CHECK(fx("DISCARD PLANS") == "DISCARD PLANS");
  CHECK(fx("DISCARD SEQUENCES") == "DISCARD SEQUENCES");
}

TEST_CASE("session advisory locks anywhere in a statement; transaction-level ones are not") {
  CHECK(fx("select pg_advisory_lock(1)") == "session advisory lock pg_advisory_lock=1");
  CHECK(fx("SELECT PG_TRY_ADVISORY_LOCK(1, 2)") == "session advisory lock pg_try_advisory_lock=1, 2");
  CHECK(fx("select pg_advisory_lock_shared(hashtext('k'))") ==
        "session advisory lock pg_advisory_lock_shared=hashtext('k')");
  CHECK(fx("select pg_catalog.pg_try_advisory_lock_shared($1)") ==
        "session advisory lock pg_try_advisory_lock_shared=$1");
  CHECK(fx("with l as (select pg_try_advisory_lock(42) as ok) select * from l") ==
        "session advisory lock pg_try_advisory_lock=42");
  CHECK(fx("update jobs set locked = true where id = 7 and pg_try_advisory_lock(id)") ==
        "session advisory lock pg_try_advisory_lock=id");
  CHECK(fx("select pg_advisory_unlock(1), pg_advisory_unlock_shared(2)") ==
        "advisory unlock pg_advisory_unlock=1; advisory unlock pg_advisory_unlock_shared=2");
  CHECK(fx("select pg_advisory_unlock_all()") == "pg_advisory_unlock_all pg_advisory_unlock_all");
  CHECK(fx("select pg_advisory_xact_lock(1)") == "");
  CHECK(fx("select pg_try_advisory_xact_lock_shared(1)") == "");
  CHECK(fx("select pg_advisory_lock") == "");                          // a column, not a call
  CHECK(fx("select 'pg_advisory_lock(1)'") == "");
  CHECK(fx("select $$ select pg_advisory_lock(1) $$") == "");
  CHECK(fx("create function f() returns void as $$ select pg_advisory_lock(1) $$ language sql") == "");
}

TEST_CASE("DO bodies: advisory locks and set_config are found, conservatively") {
  CHECK(fx("do $$ begin perform pg_advisory_lock(1); end $$") == "session advisory lock pg_advisory_lock=1");
  CHECK(fx("DO LANGUAGE plpgsql $b$ BEGIN PERFORM set_config('a.b', 'c', false); END $b$") ==
        "SET a.b=c (set_config)");
  CHECK(fx("DO 'begin perform set_config(''a.b'', ''c'', false); end'") == "SET a.b=c (set_config)");
  CHECK(fx("do $$ begin execute 'select pg_advisory_lock(7)'; end $$") == "session advisory lock pg_advisory_lock=7");
  CHECK(fx("do $$ begin perform pg_advisory_xact_lock(1); end $$") == "");
  CHECK(fx("do $$ begin raise notice 'hello'; end $$") == "");
  CHECK(classes("do $$ begin end $$") == "other");
}

TEST_CASE("keywords inside strings, comments and identifiers are not statements") {
  CHECK(fx("select 'set role x'") == "");
  CHECK(fx("select 1 -- set role x") == "");
  CHECK(fx("/* listen x; */ select 1") == "");
  CHECK(fx("select \"settings\", reset_at from t") == "");
  CHECK(fx("select settings, reset_at from t") == "");
  CHECK(fx("select * from listen_log") == "");
  CHECK(fx("update settings set value = 1 where name = 'role'") == "");
  CHECK(fx("insert into prepare_queue (discard) values ('all')") == "");
  CHECK(fx("select E'\\'; set role x; --'") == "");
}

TEST_CASE("multi-statement texts: order and statement indexes") {
  CHECK(fx("select 1; set search_path = a; listen c") == "SET search_path=a @1; LISTEN c @2");
  CHECK(fx("SET a.b = 1; RESET a.b; RESET ALL") == "SET a.b=1; RESET a.b @1; RESET ALL @2");
  CHECK(fx("select 'a;b'; set role x") == "SET ROLE role=x @1");
  CHECK(fx("BEGIN; SET LOCAL x = 1; SELECT 1; COMMIT") == "");
  CHECK(classes("BEGIN; SET LOCAL x = 1; SELECT 1; COMMIT") == "transaction control,session,read,transaction control");
  CHECK(fx(";; select pg_advisory_lock(1);; ;") == "session advisory lock pg_advisory_lock=1");
  CHECK(classes(";; select 1;; ;") == "read");
  CHECK(fx("do $$ begin perform 1; end $$; listen x") == "LISTEN x @1");
  const char* routine =
      "create function f() returns int language sql begin atomic select 1; select 2; end; "
      "select pg_advisory_lock(3)";
  CHECK(fx(routine) == "session advisory lock pg_advisory_lock=3 @1");
  CHECK(classes(routine) == "DDL,read");
}

TEST_CASE("weird whitespace, case and comments anywhere") {
  CHECK(fx("\n\t  sEt\f/*c*/ SeArCh_PaTh\v=\r\n'x'  ;  ") == "SET search_path='x'");
  CHECK(fx("SET/**/ROLE/*a /*nested*/ b*/admin") == "SET ROLE role=admin");
  CHECK(fx("--c\nLISTEN--c\n\"x\"") == "LISTEN x");
  CHECK(fx("sElEcT Pg_Advisory_Lock ( 5 )") == "session advisory lock pg_advisory_lock=5");
}

TEST_CASE("unterminated input is classified without running past the end") {
  CHECK(fx("set search_path = 'abc") == "SET search_path='abc");
  CHECK(fx("select 'abc; set role x") == "");
  CHECK(fx("select pg_advisory_lock(1") == "session advisory lock pg_advisory_lock=1");
  CHECK(fx("select set_config('a', 'b', false") == "SET a=b (set_config)");
  CHECK(fx("/* set role x") == "");
  CHECK(classes("/* set role x") == "");
  CHECK(fx("do $$ perform pg_advisory_lock(1)") == "session advisory lock pg_advisory_lock=1");
  CHECK(fx("SET") == "SET");
  CHECK(fx("RESET") == "RESET");
  CHECK(fx("LISTEN") == "LISTEN");
  CHECK(fx("DECLARE") == "");
}

TEST_CASE("long statements: bounded analysis, conservative about what lies past the head") {
  std::string list;
  for (int i = 0; i < 3000; ++i) list += "1, ";           // 6000 tokens: past the 4096-token head
  CHECK(fx("select " + list + "1") == "");
  CHECK(classes("select " + list + "1") == "read");
  CHECK(fx("select " + list + "pg_advisory_lock(1)") == "statement too complex to analyze");
  CHECK(fx("select " + list + "1 into temp t") == "statement too complex to analyze");
  CHECK(classes("select " + list + "1 into temp t") == "write");
  CHECK(classes("select " + list + "1 from t for update") == "write");
  CHECK(classes("select " + list + "1 from t where a = 'insert'") == "read");
  CHECK(classes("with x as (select " + list + "1), d as (delete from t) select 1") == "write");
  std::string rows;
  for (int i = 0; i < 2000; ++i) rows += "(1, 'advisory set_config into'), ";
  CHECK(fx("insert into t values " + rows + "(2, 'x')") == "");
  CHECK(classes("insert into t values " + rows + "(2, 'x')") == "write");
  const SessionEffects cut = classify_session_effects("set search_path = " + list + "x");
  REQUIRE(cut.effects().size() == 2);
  CHECK(cut.effects()[0].kind == EffectKind::kSetParameter);
  CHECK(cut.effects()[1].kind == EffectKind::kUnanalyzed);
  // Nesting that would blow a stack or a token vector: parentheses, EXPLAIN chains, empty statements.
  const std::string parens(1 << 20, '(');
  CHECK(fx(parens + "select pg_advisory_lock(1)") == "statement too complex to analyze");
  std::string explains;
  for (int i = 0; i < 100000; ++i) explains += "explain ";
  CHECK(classes(explains + "select 1") == "read");
  CHECK(classes(std::string(1 << 20, ';')) == "");
}

TEST_CASE("effects are capped: one kUnanalyzed stands for the rest") {
  std::string many;
  for (size_t i = 0; i < kMaxEffects + 500; ++i) many += "listen c" + std::to_string(i) + ";";
  const SessionEffects r = classify_session_effects(many);
  CHECK(r.statement_count() == kMaxEffects + 500);
  REQUIRE(r.effects().size() == kMaxEffects + 1);
  CHECK(r.effects()[kMaxEffects - 1].kind == EffectKind::kListen);
  CHECK(r.effects()[kMaxEffects].kind == EffectKind::kUnanalyzed);
  CHECK(r.effects()[kMaxEffects].statement == kMaxEffects);
}

TEST_CASE("DO bodies: nested EXECUTE strings are scanned two levels deep, then reported as unanalyzed") {
  auto quote = [](const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  };
  std::string inner = "select pg_advisory_lock(1)";
  std::vector<std::string> seen;
  for (int depth = 1; depth <= 4; ++depth) {
    inner = "execute " + quote(inner);
    seen.push_back(fx("do $$ begin " + inner + "; end $$"));
  }
  CHECK(seen == std::vector<std::string>{"session advisory lock pg_advisory_lock=1",
                                         "session advisory lock pg_advisory_lock=1",
                                         "statement too complex to analyze", "statement too complex to analyze"});
  // A string this analyzer does not decode (Unicode escapes) that names a watched function.
  CHECK(fx("do $$ begin execute U&'select pg\\005fadvisory_lock(1)'; end $$") == "statement too complex to analyze");
  CHECK(fx("do $$ begin execute U&'select pg_advisory_lock(1)'; end $$") == "session advisory lock pg_advisory_lock=1");
}

TEST_CASE("standard_conforming_strings off changes where strings end") {
  LexOptions off;
  off.standard_conforming_strings = false;
  CHECK(fx("select 'a\\'; set role x; --'", off) == "");
  CHECK(fx("select 'a\\'; set role x; --'") == "SET ROLE role=x @1");
}

TEST_CASE("statement classes") {
  CHECK(classes("select 1") == "read");
  CHECK(classes("(select 1) union select 2") == "read");
  CHECK(classes("values (1), (2)") == "read");
  CHECK(classes("TABLE t") == "read");
  CHECK(classes("show search_path") == "read");
  CHECK(classes("with x as (select 1) select * from x") == "read");
  CHECK(classes("select * from t for update") == "write");
  CHECK(classes("select * from t for no key update skip locked") == "write");
  CHECK(classes("select * from t for key share") == "write");
  CHECK(classes("select substring(a for 2) from t") == "read");
  CHECK(classes("select * into t2 from t") == "write");
  CHECK(classes("with d as (delete from t returning *) select * from d") == "write");
  CHECK(classes("with x as (select 1) insert into t select * from x") == "write");
  CHECK(classes("insert into t values (1); update t set a = 2; delete from t; merge into t using s on true "
                "when matched then delete; truncate t; refresh materialized view m") ==
        "write,write,write,write,write,write");
  CHECK(classes("copy t from stdin; copy t to stdout; copy (select 1) to stdout; copy t (a) from stdin") ==
        "write,read,read,write");
  CHECK(classes("explain select 1; explain insert into t values (1); explain analyze insert into t values (1)") ==
        "read,read,write");
  CHECK(classes("explain (analyze, buffers) delete from t; explain (analyze false) delete from t; "
                "explain analyze verbose select 1") == "write,read,read");
  CHECK(classes("begin; start transaction; commit; end; rollback to savepoint a; abort; savepoint a; release a") ==
        "transaction control,transaction control,transaction control,transaction control,"
        "transaction control,transaction control,transaction control,transaction control");
  CHECK(classes("create table t (a int); alter table t add b int; drop table t; grant select on t to x; "
                "comment on table t is 'x'; revoke all on t from x") == "DDL,DDL,DDL,DDL,DDL,DDL");
  CHECK(classes("set x = 1; reset x; listen c; discard all; deallocate all; load 'x'; close all") ==
        "session,session,session,session,session,session,session");
  CHECK(classes("do $$ $$; call p(); vacuum; notify c; execute q; fetch 1 from c; lock t") ==
        "other,other,other,other,other,other,other");
  CHECK(classes("") == "");
}

TEST_CASE("the pre-scan clears plain statements and sends everything else to the full path") {
  for (const char* sql : {"select 1", "  SELECT * FROM t WHERE a = $1", "insert into t values (1);",
                          "begin", "COMMIT;  \n", "update t set a = 1", "delete from t", "show all",
                          "select format('%s', x) from information_schema.tables", "values (1)"}) {
    CAPTURE(sql);
    CHECK_FALSE(may_have_session_effects(sql));
    const SessionEffects r = classify_session_effects(sql);
    CHECK_FALSE(r.any());
    CHECK(r.statement_count() == 1);
  }
  for (const char* sql : {"select pg_advisory_lock(1)", "select set_config('a','b',false)", "set x = 1",
                          "select 1; select 2", "select 1 into t", "select * from t for update",
                          "/* c */ select 1", "with x as (select 1) select 1", "select$1", "select 1into t",
                          "listen x", "do $$ $$", "", "   ", "select 1; -- c", "begin; set role x"}) {
    CAPTURE(sql);
    CHECK(may_have_session_effects(sql));
  }
  CHECK(classify_session_effects("select 1").statement_class(0) == StatementClass::kRead);
  CHECK(classify_session_effects("UPDATE t SET a = 1;").statement_class(0) == StatementClass::kWrite);
  CHECK(classify_session_effects("start transaction").statement_class(0) == StatementClass::kTransactionControl);
}

TEST_CASE("feature names for every effect kind, and class names") {
  CHECK(feature_name(EffectKind::kSetRole) == "SET ROLE");
  CHECK(feature_name(EffectKind::kTempTable) == "temporary table");
  CHECK(feature_name(EffectKind::kPrepare) == "SQL PREPARE");
  CHECK(feature_name(EffectKind::kListen) == "LISTEN");
  CHECK(feature_name(EffectKind::kAdvisoryLock) == "session advisory lock");
  std::vector<std::string_view> seen;
  for (size_t k = 0; k < kEffectKindCount; ++k) {
    const std::string_view name = feature_name(EffectKind(k));
    CHECK(name != "unknown");
    for (std::string_view other : seen) CHECK(other != name);
    seen.push_back(name);
  }
  CHECK(class_name(StatementClass::kDdl) == "DDL");
  CHECK(class_name(StatementClass::kTransactionControl) == "transaction control");
}

TEST_CASE("random SQL-ish fragments and random bytes: no crash, pre-scan agrees with the full path") {
  const std::vector<std::string> fragments = {
      "select", "SET", "reset", "role", "local", "session", "temp", "create", "table", "into", "for",
      "update", "listen", "do", "begin", "atomic", "end", "case", "function", "(", ")", ",", ";", "'",
      "\"", "$$", "$q$", "--", "/*", "*/", "\n", " ", "pg_advisory_lock", "pg_advisory_unlock_all",
      "set_config", "false", "'f'", "1", "$1", "=", "to", "default", "e'\\'", "x", "pg_temp", ".",
      "explain", "analyze", "prepare", "declare", "with", "hold", "cursor", "discard", "all", "*"};
  const std::vector<std::string> fast_words = {"select", "SELECT", "insert", "update", "delete", "values",
                                               "table", "show", "begin", "end", "commit", "  Select\n"};
  std::mt19937 rng(5150);
  size_t with_effects = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string sql;
    if (iter % 4 == 3) {
      sql.resize(rng() % 64);
      for (char& c : sql) c = char(rng());
    } else {
      // Half of these start like the statements the pre-scan answers for, to test its proofs.
      if (iter % 2) sql = fast_words[rng() % fast_words.size()] + (rng() % 2 ? " " : "");
      for (size_t n = rng() % 16; n > 0; --n) {
        sql += fragments[rng() % fragments.size()];
        if (rng() % 3) sql += ' ';
      }
    }
    CAPTURE(sql);
    LexOptions options;
    options.standard_conforming_strings = iter % 5 != 0;
    const SessionEffects fast = classify_session_effects(sql, options);
    const SessionEffects slow = classify_session_effects_slowly(sql, options);
    REQUIRE(same(fast, slow));
    if (!may_have_session_effects(sql, options)) REQUIRE_FALSE(slow.any());
    for (const Effect& e : slow.effects()) {
      REQUIRE(e.statement < slow.statement_count());
      REQUIRE(size_t(e.kind) < kEffectKindCount);
    }
    with_effects += slow.any();
  }
  CHECK(with_effects > 500);   // the fragments really reach the classifier's rules
}

TEST_CASE("sequence functions: nextval/setval advance, currval/lastval read, in order, any case or schema") {
  CHECK(fx("select nextval('s')") == "nextval/setval nextval");
  CHECK(fx("SELECT pg_catalog.SETVAL('s', 5)") == "nextval/setval setval");
  CHECK(fx("select currval('s')") == "currval/lastval currval");
  CHECK(fx("select lastval()") == "currval/lastval lastval");
  CHECK(fx("insert into t values (nextval('s')); select currval('s')") ==
        "nextval/setval nextval; currval/lastval currval @1");
  CHECK(fx("insert into t (id) values (default)") == "");   // a DEFAULT nextval() is not in the text
  CHECK(fx("select nextval_count, lastval from t") == "");  // columns, not calls
  CHECK(fx("select 'currval(x)'") == "");                   // a string, not a call
}
