// StatementAnalysis and AnalysisCache: transaction blocks a text leaves open, statement texts, truncation, memoization.
#include <doctest/doctest.h>

#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "analyzer/fingerprint.h"
#include "analyzer/session_state.h"
#include "proxy/request/statement_analysis.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
using analyzer::EffectKind;

TEST_CASE("StatementAnalysis: which texts leave a transaction block open") {
  struct Case {
    const char* text;
    bool open;
  };
  for (const Case& c : {Case{"begin", true},
                        Case{"BEGIN; select 1", true},
                        Case{"Begin Isolation Level Serializable", true},
                        Case{"begin; commit", false},
                        Case{"begin; select 1; commit;", false},
                        Case{"start transaction read only", true},
                        Case{"start transaction; rollback", false},
                        Case{"commit and chain", true},
                        Case{"rollback and chain", true},
                        Case{"commit and no chain", false},
                        Case{"begin; rollback to savepoint a", true},
                        Case{"begin; rollback work to a", true},
                        Case{"rollback to savepoint a", false},   // stays as before: none open
                        Case{"begin; savepoint a; release a", true},
                        Case{"begin; end", false},
                        Case{"end", false},
                        Case{"begin; abort", false},
                        Case{"abort", false},
                        Case{"begin; prepare transaction 'x'", false},
                        Case{"begin; commit prepared 'x'", true},   // another transaction's
                        Case{"select 1", false},
                        Case{"/* begin */ select 'begin'", false},
                        Case{"commit; begin", true}}) {
    CAPTURE(c.text);
    CHECK(analyze_statement(c.text)->opens_transaction == c.open);
  }
}

TEST_CASE("StatementAnalysis: each statement's text, without the whitespace and comments around it") {
  auto a = analyze_statement("  select 1 ; /* two */ select 2;\n-- three\n  insert into t values (';') ;");
  REQUIRE(a->statement_count() == 3);
  CHECK(a->statement_text(0) == "select 1");
  CHECK(a->statement_text(1) == "select 2");
  CHECK(a->statement_text(2) == "insert into t values (';')");
  CHECK(a->statement_text(3) == a->text);   // past the end: the whole text
  CHECK(a->effects.statement_class(2) == analyzer::StatementClass::kWrite);
  CHECK_FALSE(a->text_truncated);

  auto empty = analyze_statement(";; -- nothing\n");
  CHECK(empty->statement_count() == 0);
  CHECK(empty->statements.empty());
  CHECK_FALSE(empty->opens_transaction);

  // Views into the analysis's own text: valid as long as the analysis is.
  std::string sql = "select 1; select 2";
  auto kept = analyze_statement(sql);
  sql.assign(sql.size(), 'x');
  CHECK(kept->statement_text(1) == "select 2");
}

TEST_CASE("StatementAnalysis: a text over kMaxKeptText is cut, but analyzed whole") {
  const std::string filler = "select '" + std::string(AnalysisCache::kMaxKeptText, 'x') + "'";
  const std::string text = filler + "; SET work_mem = '64MB'";
  auto a = analyze_statement(text);
  CHECK(a->text_truncated);
  CHECK(a->text.size() == AnalysisCache::kMaxKeptText);
  CHECK(a->text == text.substr(0, AnalysisCache::kMaxKeptText));
  CHECK(a->statement_count() == 2);
  CHECK(a->effects.has(EffectKind::kSetParameter));
  CHECK(a->hash == analyze_statement(text)->hash);
  CHECK(a->hash != analyze_statement(text.substr(0, AnalysisCache::kMaxKeptText))->hash);
  CHECK(a->statement_text(1) == a->text);   // not known separately

  // Transaction control past the cut is read from the whole text too.
  CHECK(analyze_statement(filler + "; begin")->opens_transaction);
  CHECK_FALSE(analyze_statement("begin; " + filler + "; commit")->opens_transaction);
  CHECK(analyze_statement("commit; " + filler + "; begin; " + filler)->opens_transaction);

  // Such texts are analyzed every time and never kept.
  AnalysisCache cache;
  auto first = cache.analyze(text);
  auto second = cache.analyze(text);
  CHECK(first != second);
  CHECK(second->effects.has(EffectKind::kSetParameter));
  CHECK(cache.stats().entries == 0);
  CHECK(cache.stats().misses == 2);
  CHECK(cache.stats().hits == 0);
  // Exactly kMaxKeptText bytes is still kept.
  const std::string limit(AnalysisCache::kMaxKeptText, ' ');
  cache.analyze(limit);
  CHECK(cache.analyze(limit) == cache.analyze(limit));
  CHECK(cache.stats().entries == 1);
}

TEST_CASE("StatementAnalysis: the constant-free key is the fingerprint's hash, made without fingerprints too") {
  // With fingerprints (query_stats on): their hash.
  auto with = analyze_statement("select v from kv where k = 1", {}, 1024);
  REQUIRE(with->fingerprint(0) != nullptr);
  CHECK(with->constant_free_key() == with->fingerprint(0)->hash);
  // Without: the same hash, made once and kept.
  auto without = analyze_statement("select v from kv where k = 1");
  REQUIRE(without->fingerprint(0) == nullptr);
  CHECK(without->constant_free_key() == with->constant_free_key());
  CHECK(without->made_key.load() == *with->constant_free_key());
  CHECK(without->constant_free_key() == with->constant_free_key());
  // Other constants, the same key; another column, another.
  CHECK(analyze_statement("select v from kv where k = 42")->constant_free_key() == without->constant_free_key());
  CHECK(analyze_statement("select k from kv where k = 1")->constant_free_key() != without->constant_free_key());
  // None for several statements, or for one cut short without fingerprints.
  CHECK_FALSE(analyze_statement("select 1; select 2")->constant_free_key().has_value());
  CHECK_FALSE(analyze_statement("select '" + std::string(AnalysisCache::kMaxKeptText, 'x') + "'")->constant_free_key().has_value());
}

TEST_CASE("StatementAnalysis: the shape key, made once, is shared by other constants only") {
  auto a = analyze_statement("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;");
  const auto key = a->shape_key();
  REQUIRE(key.has_value());
  CHECK(a->made_shape.load() == *key);
  CHECK(a->shape_key() == key);
  CHECK(analyze_statement("SELECT abalance FROM pgbench_accounts WHERE aid = 7;")->shape_key() == key);
  CHECK(analyze_statement("SELECT bid FROM pgbench_accounts WHERE aid = 7;")->shape_key() != key);
  // Not the fingerprint's key: the verdicts keep both in one map.
  CHECK(analyze_statement("select 1", {}, 1024)->shape_key() != analyze_statement("select 1", {}, 1024)->constant_free_key());
  // None for several statements, a text cut short, or one it declines (a quoted name).
  CHECK_FALSE(analyze_statement("select 1; select 2")->shape_key().has_value());
  CHECK_FALSE(analyze_statement("select '" + std::string(AnalysisCache::kMaxKeptText, 'x') + "'")->shape_key().has_value());
  auto declined = analyze_statement("select 1 from \"t1\"");
  CHECK_FALSE(declined->shape_key().has_value());
  CHECK(declined->made_shape.load() == StatementAnalysis::kNoShape);
  CHECK(declined->constant_free_key().has_value());
}

namespace {

// A text the cache keeps: it is kept from its second sighting on.
AnalysisPtr kept(AnalysisCache& cache, const std::string& text, const analyzer::LexOptions& options = {}) {
  cache.analyze(text, options);
  return cache.analyze(text, options);
}

}  // namespace

TEST_CASE("AnalysisCache: the same text is one shared analysis; lexing options make another") {
  AnalysisCache cache;
  auto once = cache.analyze("select 1");                      // seen once: analyzed, not kept
  auto a = cache.analyze(std::string("select ") + "1");       // seen again: kept
  CHECK(once != a);
  CHECK(cache.analyze("select 1").get() == a.get());
  CHECK(kept(cache, "select 2") != a);
  CHECK(kept(cache, "select 1 ") != a);
  analyzer::LexOptions old_strings;
  old_strings.standard_conforming_strings = false;
  // The same bytes mean something else with backslash escapes: one statement, not two.
  const std::string tricky = "select 'a\\'; set work_mem = 1; select '";
  auto standard = kept(cache, tricky);
  auto escaped = kept(cache, tricky, old_strings);
  CHECK(standard != escaped);
  CHECK(standard->statement_count() == 3);
  CHECK(escaped->statement_count() == 1);
  CHECK(cache.analyze(tricky, old_strings) == escaped);
  const auto s = cache.stats();
  CHECK(s.hits == 2);
  CHECK(s.misses == 10);
  CHECK(s.entries == 5);
  CHECK(s.evictions == 0);
}

TEST_CASE("AnalysisCache: a text seen once is not kept, so one-off texts do not churn it") {
  AnalysisCache cache(3);
  auto t = [](int i) { return "select abalance from pgbench_accounts where aid = " + std::to_string(i); };
  auto hot = kept(cache, t(0));
  for (int i = 1; i <= 1000; ++i) cache.analyze(t(i));
  CHECK(cache.stats().entries == 1);
  CHECK(cache.stats().evictions == 0);
  CHECK(cache.analyze(t(0)) == hot);
}

namespace {

// `#` becomes a run of digits, `@` a plain string's body, some of them words the pre-scan
// stops at, or what splits statements outside a string.
std::string filled(std::string_view pattern, uint64_t& seed) {
  static const char* const bodies[] = {"x", "", "it''s", "into", "for update", "nextval(1)", "; set a = 1;",
                                       "set_config", "advisory", "héllo", "1", "--", "/*"};
  std::string out;
  for (char c : pattern) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    if (c == '#') out += std::to_string(seed >> 40);
    else if (c == '@') out += bodies[(seed >> 33) % std::size(bodies)];
    else out += c;
  }
  return out;
}

void check_same(const StatementAnalysis& got, const StatementAnalysis& want) {
  CHECK(got.text == want.text);
  CHECK(got.hash == want.hash);
  REQUIRE(got.statement_count() == want.statement_count());
  for (size_t i = 0; i < want.statement_count(); ++i) {
    CHECK(got.effects.statement_class(i) == want.effects.statement_class(i));
    CHECK(got.statement_text(i) == want.statement_text(i));
  }
  CHECK(got.effects.effects() == want.effects.effects());
  CHECK(got.opens_transaction == want.opens_transaction);
  CHECK(got.tx_controls == want.tx_controls);
  CHECK(got.ddl == want.ddl);
  CHECK(got.runs_code == want.runs_code);
  CHECK(got.advances_sequences == want.advances_sequences);
  CHECK(got.reads_sequences == want.reads_sequences);
  CHECK(got.shape_key() == want.shape_key());
}

}  // namespace

TEST_CASE("AnalysisCache: a new text of a seen shape is analyzed like it, exactly as on its own") {
  const char* const patterns[] = {
      "SELECT abalance FROM pgbench_accounts WHERE aid = #;",
      "select a from t where b = '@' and c = #",
      "  select '@' , #  ;  ",
      "insert into t values (#, '@')",
      "update t set a = '@' where id = #",
      "delete from t where s = '@'",
      "values (#, '@')",
      "select * from t where a = '@' for update",
      "select pg_catalog.set_config('@', '@', '@')",
      "select nextval('@'), #",
      "select pg_advisory_lock(#)",
      "select '@' into t2",
      "set statement_timeout = #",
      "begin isolation level read committed",
  };
  AnalysisCache cache;
  uint64_t seed = 20261206;
  for (int round = 0; round < 30; ++round) {
    for (const char* pattern : patterns) {
      const std::string text = filled(pattern, seed);
      CAPTURE(text);
      check_same(*cache.analyze(text), *analyze_statement(text));
    }
  }
  CHECK(cache.stats().shaped > 100);
}

TEST_CASE("AnalysisCache: a read's fingerprint takes its constants from the analysis's shape pass, exactly as made afresh") {
  // The cache keeps where the shape pass found a read's constants; the fingerprint takes them
  // (shifted to its statement) instead of making that pass again. Held to fingerprint() itself.
  const char* const patterns[] = {
      "SELECT abalance FROM pgbench_accounts WHERE aid = #;",
      "   select a from t where b = '@' and c = #  ;  ",
      "\n\tselect '@' , # , '@'",
      "select * from t where a in (#, #, #) and b = -#",
      "select #.# , '@' from t where c = # limit #",
      "select x from t where y = '@' and z is null",
      "update t set a = '@' where id = #",
  };
  for (size_t length : {size_t(20), size_t(1024)}) {
    AnalysisCache cache(2048, length, /*constants=*/true);
    uint64_t seed = 20261207 + length;
    for (int round = 0; round < 30; ++round) {
      for (const char* pattern : patterns) {
        const std::string text = filled(pattern, seed);
        CAPTURE(text);
        const AnalysisPtr a = cache.analyze(text);
        REQUIRE(a->statement_count() == 1);
        const analyzer::Fingerprint* got = a->fingerprint(0);
        REQUIRE(got != nullptr);
        const bool read = a->effects.statement_class(0) == analyzer::StatementClass::kRead;
        const analyzer::Fingerprint want = analyzer::fingerprint(
            a->statement_text(0), {.lex = {}, .max_length = length, .collect_constants = read});
        CHECK(got->hash == want.hash);
        CHECK(got->normalized == want.normalized);
        CHECK(got->truncated == want.truncated);
        CHECK(got->constants == want.constants);
        CHECK_FALSE(a->shape_blanks.has_value());   // taken by the fingerprint
      }
    }
  }
}

TEST_CASE("AnalysisCache: what cannot be analyzed by its shape never is") {
  AnalysisCache cache;
  // set_config(..., 'true') is transaction-local, 'false' is not: the shapes are equal, the
  // effects are not, and neither text is analyzed like the other.
  const std::string local = "select set_config('search_path', 'a', 'true')";
  const std::string session = "select set_config('search_path', 'a', 'false')";
  cache.analyze(local);
  auto a = cache.analyze(session);
  CHECK(a->effects.any());
  CHECK(cache.stats().shaped == 0);
  // Transaction control is classified every time (its savepoint names and AND CHAIN).
  cache.analyze("savepoint s1");
  cache.analyze("savepoint s2");
  CHECK(cache.stats().shaped == 0);
  // A plain read teaches its shape; the next text of it is analyzed like it.
  cache.analyze("select v from kv where k = 1");
  auto b = cache.analyze("select v from kv where k = 22");
  CHECK(cache.stats().shaped == 1);
  CHECK(b->text == "select v from kv where k = 22");
  CHECK(b->statement_count() == 1);
  CHECK(b->statement_text(0) == "select v from kv where k = 22");
}

TEST_CASE("AnalysisCache: beyond its capacity the least recently used text is evicted") {
  AnalysisCache cache(3);
  auto t = [](int i) { return "select " + std::to_string(i); };
  auto one = kept(cache, t(1));
  kept(cache, t(2));
  kept(cache, t(3));
  CHECK(cache.analyze(t(1)) == one);   // now the most recently used
  kept(cache, t(4));                    // evicts 2
  CHECK(cache.stats().evictions == 1);
  CHECK(cache.stats().entries == 3);
  CHECK(cache.analyze(t(1)) == one);
  const uint64_t misses = cache.stats().misses;
  cache.analyze(t(2));   // gone, and seen before: made again and kept, evicting 3
  CHECK(cache.stats().misses == misses + 1);
  CHECK(cache.stats().evictions == 2);
  // Order now 2, 1, 4: each later text kept evicts one; 1 and 2 are hits until evicted.
  for (int i = 5; i < 1005; ++i) kept(cache, t(i));
  CHECK(cache.stats().entries == 3);
  CHECK(cache.stats().evictions == 1002);

  // Capacity 0 means 1.
  AnalysisCache tiny(0);
  auto a = kept(tiny, "select 1");
  CHECK(tiny.analyze("select 1") == a);
  kept(tiny, "select 2");
  CHECK(tiny.stats().entries == 1);
  CHECK(tiny.stats().evictions == 1);
}

TEST_CASE("a text of one statement without ';' or comments is its own statement, as split_statements gives it") {
  for (const std::string text : {"select 1", "  select 1  ", "\tselect\n1\n", "select 'a  '", "select $$x$$",
                                 "select 1;", "select 1 ;\n", " select 1\n;  ", "select 1 -- c", "/* c */ select 1", "select 'a;b'"}) {
    const AnalysisPtr a = analyze_statement(text);
    REQUIRE(a->statement_count() == 1);
    CHECK_MESSAGE(a->statements == analyzer::split_statements(text), text);
  }
}

TEST_CASE("transaction control statements, in order, with savepoint names and AND CHAIN") {
  using K = TxControl::Kind;
  auto a = analyze_statement(
      "BEGIN; savepoint a; SAVEPOINT \"Mixed\"; release b; release savepoint c; rollback to d; "
      "ROLLBACK WORK TO SAVEPOINT e; commit and chain; abort; end; rollback transaction and no chain; "
      "prepare transaction 'x'; commit prepared 'x'; select 1; start transaction");
  std::vector<TxControl> want = {
      {K::kBegin, 0, false, ""},     {K::kSavepoint, 1, false, "a"},   {K::kSavepoint, 2, false, "Mixed"},
      {K::kRelease, 3, false, "b"},  {K::kRelease, 4, false, "c"},     {K::kRollbackTo, 5, false, "d"},
      {K::kRollbackTo, 6, false, "e"}, {K::kCommit, 7, true, ""},      {K::kRollback, 8, false, ""},
      {K::kCommit, 9, false, ""},    {K::kRollback, 10, false, ""},   {K::kCommit, 11, false, ""},
      {K::kBegin, 14, false, ""}};
  CHECK(a->tx_controls == want);
  CHECK(a->opens_transaction);
  CHECK(analyze_statement("select 1")->tx_controls.empty());
}

TEST_CASE("runs_code: DO and CALL, in any statement of a text, any case; nothing else") {
  CHECK(analyze_statement("DO $$ BEGIN EXECUTE 'SET x.y = 1'; END $$")->runs_code);
  CHECK(analyze_statement("select 1; call my_proc(1)")->runs_code);
  CHECK(analyze_statement("/* c */ Call p()")->runs_code);
  CHECK_FALSE(analyze_statement("select do_it(), call from t")->runs_code);
  CHECK_FALSE(analyze_statement("select 1")->runs_code);
  CHECK_FALSE(analyze_statement("insert into calls values (1)")->runs_code);
}

TEST_CASE("AnalysisCache: with a fingerprint length, each statement carries its fingerprint") {
  AnalysisCache plain(16);
  CHECK(plain.analyze("select 1; select 2")->fingerprint(1) == nullptr);
  CHECK(plain.analyze("select 1")->fingerprint(0) == nullptr);

  AnalysisCache cache(16, 12);
  const AnalysisPtr a = cache.analyze("SELECT a FROM t WHERE id = 5; select 'x'");
  REQUIRE(a->fingerprint(1) != nullptr);
  CHECK(a->fingerprint(0)->normalized == "select a fro");   // cut at 12 bytes for display
  CHECK(a->fingerprint(0)->truncated);
  CHECK(a->fingerprint(1)->normalized == "select ?");
  CHECK(a->fingerprint(2) == nullptr);
  // The same query with another constant, or prepared with $1: the same fingerprint.
  CHECK(cache.analyze("select a from t where id = 7")->fingerprint(0)->hash == a->fingerprint(0)->hash);
  CHECK(cache.analyze("select a from t where id = $1")->fingerprint(0)->hash == a->fingerprint(0)->hash);
  CHECK(cache.analyze("select a from t where id in (1, 2)")->fingerprint(0)->hash != a->fingerprint(0)->hash);
}

TEST_CASE("fingerprints are filled once, even when threads ask for them at the same time") {
  for (int round = 0; round < 50; ++round) {
    const AnalysisPtr a = analyze_statement("select a from t where id = 5; select b from u", {}, 1024);
    std::vector<const analyzer::Fingerprint*> seen(4, nullptr);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < seen.size(); ++t) threads.emplace_back([&, t] { seen[t] = a->fingerprint(1); });
    for (auto& t : threads) t.join();
    for (const auto* f : seen) {
      REQUIRE(f != nullptr);
      CHECK(f == seen[0]);   // one vector, filled once: every caller sees the same element
    }
    CHECK(seen[0]->normalized == "select b from u");
    CHECK(a->fingerprints.size() == 2);
  }
}

TEST_CASE("fingerprints of a text longer than what is kept are made from the whole text, at once") {
  const std::string filler = "select '" + std::string(AnalysisCache::kMaxKeptText, 'x') + "'";
  const std::string text = filler + "; select b from t where id = 3";
  const AnalysisPtr a = analyze_statement(text, {}, 1024);
  REQUIRE(a->text_truncated);
  REQUIRE(a->fingerprint(1) != nullptr);
  CHECK(a->fingerprint(1)->normalized == "select b from t where id = ?");
  CHECK(a->fingerprint(0)->normalized == "select ?");
}
