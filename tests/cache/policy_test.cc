// Rules by table or fingerprint, and hints in the statement text (cache/policy.h).
#include <doctest/doctest.h>

#include "cache/catalog_queries.h"
#include "cache/policy.h"

using namespace pgrelay::cache;
using namespace std::chrono_literals;

namespace {

RelationInfo table(Oid oid, std::vector<Oid> family = {}) {
  RelationInfo info;
  info.found = true;
  info.oid = oid;
  info.kind = 'r';
  info.family = family.empty() ? std::vector<Oid>{oid} : std::move(family);
  return info;
}

ReadJudgement reads(std::vector<Oid> oids) {
  ReadJudgement j;
  j.verdict = Verdict::kCacheable;
  j.depends_on = std::move(oids);
  return j;
}

CacheRule table_rule(std::string schema, std::string name, std::optional<Ttl> ttl, bool cache = true) {
  CacheRule r;
  r.table = RelationName{std::move(schema), std::move(name)};
  r.ttl = ttl;
  r.cache = cache;
  return r;
}

CacheRule fingerprint_rule(uint64_t fp, std::optional<Ttl> ttl, bool cache = true) {
  CacheRule r;
  r.fingerprint = fp;
  r.ttl = ttl;
  r.cache = cache;
  return r;
}

}  // namespace

TEST_CASE("a table rule matches a read that depends on the table, resolved through the catalog view") {
  FetchedCatalog c;
  c.add(RelationName{"public", "sessions"}, table(10));
  c.add(RelationName{"", "sessions"}, table(10));   // the same table, as an unqualified read names it
  c.add(RelationName{"", "users"}, table(20));
  const std::vector<CacheRule> rules = {table_rule("public", "sessions", 5s)};

  RuleVerdict v = apply_rules(rules, 0x1, reads({10}), c);
  CHECK_FALSE(v.refused);
  CHECK_FALSE(v.pending());
  REQUIRE(v.ttl);
  CHECK(*v.ttl == 5s);
  CHECK(apply_rules(rules, 0x1, reads({10, 20}), c).ttl == Ttl(5s));   // a join that reads it too

  v = apply_rules(rules, 0x1, reads({20}), c);
  CHECK_FALSE(v.ttl);
  CHECK_FALSE(v.refused);
}

TEST_CASE("a table rule covers the table's inheritance family: partitions and parents") {
  FetchedCatalog c;
  c.add(RelationName{"", "events"}, table(100, {100, 101, 102}));
  const std::vector<CacheRule> rules = {table_rule("", "events", std::nullopt, false)};
  CHECK(apply_rules(rules, 0, reads({101}), c).refused);   // a partition read directly
  CHECK(apply_rules(rules, 0, reads({100}), c).refused);
  CHECK_FALSE(apply_rules(rules, 0, reads({103}), c).refused);
}

TEST_CASE("a table rule whose name is not fetched yet keeps the verdict pending; a missing table matches nothing") {
  FetchedCatalog c;
  const std::vector<CacheRule> rules = {table_rule("public", "sessions", 5s)};
  RuleVerdict v = apply_rules(rules, 0, reads({10}), c);
  CHECK(v.pending());
  REQUIRE(v.missing.size() == 1);
  CHECK(v.missing[0] == RelationName{"public", "sessions"});

  c.add(RelationName{"public", "sessions"}, RelationInfo{});   // fetched: no such table
  v = apply_rules(rules, 0, reads({10}), c);
  CHECK_FALSE(v.pending());
  CHECK_FALSE(v.ttl);

  // A refusal does not wait for anything.
  FetchedCatalog empty;
  const std::vector<CacheRule> both = {table_rule("", "t", 1s), fingerprint_rule(7, std::nullopt, false)};
  v = apply_rules(both, 7, reads({1}), empty);
  CHECK(v.refused);
  CHECK_FALSE(v.pending());
}

TEST_CASE("the shortest TTL among matching rules wins, and cache = false wins over all") {
  FetchedCatalog c;
  c.add(RelationName{"", "a"}, table(1));
  c.add(RelationName{"", "b"}, table(2));
  std::vector<CacheRule> rules = {table_rule("", "a", 30s), table_rule("", "b", 5s), fingerprint_rule(0xabc, 10s)};
  CHECK(apply_rules(rules, 0xabc, reads({1, 2}), c).ttl == Ttl(5s));
  CHECK(apply_rules(rules, 0xabc, reads({1}), c).ttl == Ttl(10s));
  CHECK(apply_rules(rules, 0xdef, reads({1}), c).ttl == Ttl(30s));
  rules.push_back(table_rule("", "a", 1h, false));
  const RuleVerdict v = apply_rules(rules, 0xabc, reads({1, 2}), c);
  CHECK(v.refused);
  CHECK_FALSE(effective_ttl({}, v, 60s));
}

TEST_CASE("hints: nocache, cache with a TTL, case-insensitive, in either comment form") {
  CHECK(parse_hint("SELECT 1 /* pgrelay:nocache */").nocache);
  CHECK(parse_hint("/*pgrelay:NOCACHE*/ SELECT 1").nocache);
  CHECK(parse_hint("SELECT 1 -- pgrelay:nocache\n").nocache);
  CacheHint h = parse_hint("SELECT * FROM t /* pgrelay:cache ttl=30s */");
  CHECK_FALSE(h.nocache);
  REQUIRE(h.ttl);
  CHECK(*h.ttl == 30s);
  CHECK(h.malformed.empty());
  CHECK(parse_hint("/* PGRELAY:Cache TTL=250ms */ SELECT 1").ttl == Ttl(250ms));
  CHECK(parse_hint("/* pgrelay:cache ttl=1s */ SELECT 1 /* pgrelay:cache ttl=5min */").ttl == Ttl(1s));
  h = parse_hint("/* pgrelay:cache */ SELECT 1");
  CHECK_FALSE(h.ttl);
  CHECK_FALSE(h.nocache);
  CHECK(h.malformed.empty());
  // Both: nocache wins.
  CHECK_FALSE(effective_ttl(parse_hint("/* pgrelay:cache ttl=5s */ /* pgrelay:nocache */ SELECT 1"), {}, 60s));
}

TEST_CASE("a hint-like text in a string literal or an identifier is not a hint") {
  CHECK_FALSE(parse_hint("SELECT '/* pgrelay:nocache */'").nocache);
  CHECK_FALSE(parse_hint("SELECT $$ -- pgrelay:nocache $$").nocache);
  CHECK_FALSE(parse_hint("SELECT 1 AS \"/* pgrelay:nocache */\"").nocache);
  CHECK_FALSE(parse_hint("SELECT 1 /* other comment */").nocache);
  CHECK_FALSE(parse_hint("SELECT 1 /* see pgrelay:nocache */").nocache);   // a hint starts its comment
}

TEST_CASE("malformed hints are ignored and say what was wrong") {
  for (const char* sql : {"SELECT 1 /* pgrelay:cache ttl=abc */", "SELECT 1 /* pgrelay:cache ttl=0 */",
                          "SELECT 1 /* pgrelay:cache forever */", "SELECT 1 /* pgrelay:nocash */",
                          "SELECT 1 /* pgrelay:nocache please */", "SELECT 1 /* pgrelay:cache ttl=5s ttl=6s */",
                          "SELECT 1 /* pgrelay:cache ttl=-5s */", "SELECT 1 /* pgrelay: */"}) {
    CAPTURE(sql);
    const CacheHint h = parse_hint(sql);
    CHECK_FALSE(h.nocache);
    CHECK_FALSE(h.ttl);
    CHECK_FALSE(h.malformed.empty());
  }
  const std::string why = parse_hint("SELECT 1 /* pgrelay:cache ttl=abc */").malformed;
  CHECK(why.find("expected a duration") != std::string::npos);
  CHECK(why.find("\"abc\"") != std::string::npos);
  CHECK(why.find("/* pgrelay:cache ttl=abc */") != std::string::npos);   // the comment, for the log line
  // A good hint next to a bad one still counts.
  const CacheHint h = parse_hint("/* pgrelay:bogus */ SELECT 1 /* pgrelay:nocache */");
  CHECK(h.nocache);
  CHECK_FALSE(h.malformed.empty());
  // An unterminated string: the scanner gives up, nothing is hinted, nothing breaks.
  CHECK_FALSE(parse_hint("SELECT 'x /* pgrelay:nocache */").nocache);
}

TEST_CASE("TTL texts") {
  CHECK(parse_ttl("30s") == Ttl(30s));
  CHECK(parse_ttl("30") == Ttl(30s));
  CHECK(parse_ttl("1.5s") == Ttl(1500ms));
  CHECK(parse_ttl("5min") == Ttl(5min));
  CHECK(parse_ttl("2h") == Ttl(2h));
  CHECK(parse_ttl("1d") == Ttl(24h));
  CHECK(parse_ttl("250ms") == Ttl(250ms));
  CHECK_FALSE(parse_ttl("0s"));
  CHECK_FALSE(parse_ttl("0.0001s"));
  CHECK_FALSE(parse_ttl("5 weeks"));
  CHECK_FALSE(parse_ttl("400d"));
  CHECK_FALSE(parse_ttl(""));
  CHECK_FALSE(parse_ttl("s"));
}

TEST_CASE("the effective TTL: the shortest of hint and rules, else the default") {
  CacheHint hint;
  RuleVerdict rules;
  CHECK(effective_ttl(hint, rules, 60s) == Ttl(60s));
  hint.ttl = 2h;   // a hint may lengthen the default...
  CHECK(effective_ttl(hint, rules, 60s) == Ttl(2h));
  rules.ttl = 5s;  // ...but not past a rule's
  CHECK(effective_ttl(hint, rules, 60s) == Ttl(5s));
  hint.ttl = 1s;
  CHECK(effective_ttl(hint, rules, 60s) == Ttl(1s));
  rules.refused = true;
  CHECK_FALSE(effective_ttl(hint, rules, 60s));
  rules.refused = false;
  hint.nocache = true;
  CHECK_FALSE(effective_ttl(hint, rules, 60s));
}
