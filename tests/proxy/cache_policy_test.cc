// The query cache's policy in the proxy: per-fingerprint counters and their cap, CACHE
// ENABLE/DISABLE, hints and rules applied to a text, why_not as workers publish it.
#include <doctest/doctest.h>

#include "analyzer/fingerprint.h"
#include "proxy/session/cache_policy.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<const cache::FetchedCatalog> catalog_with(const std::string& table, cache::Oid oid) {
  auto c = std::make_shared<cache::FetchedCatalog>();
  cache::RelationInfo info;
  info.found = true;
  info.oid = oid;
  info.kind = 'r';
  info.family = {oid};
  c->add(cache::RelationName{"", table}, info);
  return c;
}

cache::ReadJudgement reads(cache::Oid oid) {
  cache::ReadJudgement j;
  j.verdict = cache::Verdict::kCacheable;
  j.depends_on = {oid};
  return j;
}

}  // namespace

TEST_CASE("cache fingerprints: one entry per fingerprint up to the cap; DISABLE makes one beyond it") {
  CacheFingerprints book(2);
  auto a = book.get(1, "select 1");
  REQUIRE(a);
  CHECK(book.get(1, "other text") == a);   // found again, text kept
  CHECK(a->normalized == "select 1");
  REQUIRE(book.get(2, "select 2"));
  CHECK_FALSE(book.get(3, "select 3"));    // full
  CHECK_FALSE(book.find(3));

  const uint64_t v = book.version();
  book.set_disabled(3, true);
  CHECK(book.version() != v);
  auto three = book.find(3);
  REQUIRE(three);
  CHECK(three->disabled.load());
  CHECK(three->why_not() == "disabled");
  book.set_disabled(3, false);
  CHECK_FALSE(three->disabled.load());
  CHECK(three->why_not().empty());
  CHECK(book.snapshot().size() == 3);

  book.set_disabled(42, false);            // ENABLE of what was never disabled: nothing made
  CHECK_FALSE(book.find(42));
  CHECK(book.get(5000, "select 5000") == nullptr);   // still full
}

TEST_CASE("cache policy: a text's hint and fingerprint, found once; nocache and DISABLE refuse") {
  CacheFingerprints book;
  CachePolicy policy(book, nullptr, 60s);
  CacheTextPolicy p;
  const std::string text = "SELECT v FROM t WHERE id = 1 /* pgrelay:nocache */";
  policy.text(p, text);
  CHECK(p.ready);
  CHECK(p.hint.nocache);
  CHECK(p.fingerprint == analyzer::fingerprint("SELECT v FROM t WHERE id = 7").hash);   // comments and constants aside
  REQUIRE(p.stats);
  CHECK(p.stats->normalized == "select v from t where id = ?");
  CHECK(policy.refuses(p));
  CHECK(p.stats->misses.load() == 1);
  CHECK(p.stats->why_not() == "nocache hint");

  CacheTextPolicy plain;
  policy.text(plain, "SELECT v FROM t WHERE id = 2");
  CHECK(plain.stats == p.stats);           // one fingerprint, one entry
  CHECK_FALSE(policy.refuses(plain));
  book.set_disabled(plain.fingerprint, true);
  CHECK(policy.refuses(plain));            // at once, through the pointer the text holds
  CHECK(p.stats->why_not() == "disabled");
  book.set_disabled(plain.fingerprint, false);
  CHECK_FALSE(policy.refuses(plain));
}

TEST_CASE("cache policy: DISABLE reaches a text whose fingerprint found no room") {
  CacheFingerprints book(1);
  CachePolicy policy(book, nullptr, 60s);
  CacheTextPolicy first, second;
  policy.text(first, "SELECT 1");
  policy.text(second, "SELECT a FROM b");
  CHECK_FALSE(second.stats);
  CHECK_FALSE(policy.refuses(second));
  book.set_disabled(second.fingerprint, true);
  policy.text(second, "SELECT a FROM b");  // the next lookup looks again
  REQUIRE(second.stats);
  CHECK(policy.refuses(second));
}

TEST_CASE("cache policy: rules and hint decide the TTL, memoized per catalog view") {
  CacheFingerprints book;
  auto rules = std::make_shared<CacheRules>();
  cache::CacheRule r;
  r.table = cache::RelationName{"", "sessions"};
  r.ttl = 5s;
  rules->push_back(r);
  CachePolicy policy(book, rules, 60s);

  CacheTextPolicy p;
  policy.text(p, "SELECT * FROM sessions");
  auto empty = std::make_shared<const cache::FetchedCatalog>();
  CachePolicy::Decision d = policy.decide(p, reads(10), empty);
  REQUIRE(d.missing);                      // the rule's table is not fetched yet
  CHECK(d.missing->front() == cache::RelationName{"", "sessions"});
  CHECK_FALSE(d.ttl);

  auto view = catalog_with("sessions", 10);
  d = policy.decide(p, reads(10), view);
  CHECK_FALSE(d.missing);
  CHECK(d.ttl == cache::Ttl(5s));
  d = policy.decide(p, reads(11), view);   // same view: the memoized verdict (depends_on is the text's)
  CHECK(d.ttl == cache::Ttl(5s));

  CacheTextPolicy hinted;
  policy.text(hinted, "/* pgrelay:cache ttl=1s */ SELECT * FROM sessions");
  CHECK(policy.decide(hinted, reads(10), view).ttl == cache::Ttl(1s));
  CacheTextPolicy other;
  policy.text(other, "/* pgrelay:cache ttl=2h */ SELECT * FROM users");
  CHECK(policy.decide(other, reads(20), view).ttl == cache::Ttl(2h));

  cache::CacheRule off;
  off.fingerprint = p.fingerprint;
  off.cache = false;
  rules = std::make_shared<CacheRules>(*rules);
  rules->push_back(off);
  CachePolicy strict(book, rules, 60s);
  CHECK_FALSE(strict.decide(p, reads(10), view).ttl);   // new rules: judged again
  CHECK(p.stats->why_not() == "rule");
}

TEST_CASE("cache policy: why_not follows the last lookup, whichever worker made it") {
  CacheFingerprints book;
  CachePolicy policy(book, nullptr, 60s);
  CacheTextPolicy w1, w2;   // the same text in two workers' memos
  policy.text(w1, "SELECT v FROM t");
  policy.text(w2, "SELECT v FROM t");
  policy.miss(w1, 60s);
  CHECK(w1.stats->why_not().empty());
  policy.refused(w2, "catalog facts pending");
  CHECK(w1.stats->why_not() == "catalog facts pending");
  policy.hit(w1, 60s);                     // w1 said "" before, but w2 spoke since
  CHECK(w1.stats->why_not().empty());
  CHECK(w1.stats->hits.load() == 1);
  CHECK(w1.stats->misses.load() == 2);
  CHECK(w1.stats->ttl_ms.load() == 60'000);
}
