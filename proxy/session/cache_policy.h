// The query cache's policy in the proxy (docs/cache.md, Policy): each text's hint and
// fingerprint, the rules' verdict, CACHE ENABLE/DISABLE, and the per-fingerprint counters of
// SHOW CACHES.
//
// CacheFingerprints is one per process (in QueryCache), shared by every worker: a map entry per
// fingerprint, found once per text by each worker's AccessMemo and then counted into with
// relaxed atomics (no lock on the hit path). It holds at most `max` fingerprints; beyond that new
// ones go uncounted, except that CACHE DISABLE always makes its entry. None is ever forgotten.
//
// CacheTextPolicy lives in the worker's AccessMemo entry (worker thread only): what a text says
// (hint, fingerprint), parsed once per distinct text, and the rules' verdict memoized per catalog
// view. CachePolicy is a session's view of them (its database's rules and default TTL), used
// by its CacheObserver on the session's thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/catalog_queries.h"
#include "cache/policy.h"
#include "conf/config.h"

namespace pgrelay::proxy {

// What SHOW CACHES shows of one fingerprint. Counters are relaxed: each exact, not one instant.
struct CacheFingerprint {
  CacheFingerprint(uint64_t fp, std::string text) : fingerprint(fp), normalized(std::move(text)) {}
  const uint64_t fingerprint;
  const std::string normalized;               // cut at CacheFingerprints::kTextLength bytes
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};            // lookups not answered from the cache, for whatever reason
  std::atomic<int64_t> ttl_ms{0};             // the TTL its reads last got; 0: none yet
  std::atomic<bool> disabled{false};          // CACHE DISABLE
  // CACHE FLUSH QUERY's wall-clock time (unix ms): the Redis tier's answers filled before it
  // are not served here (memory's are dropped by the flush itself).
  std::atomic<uint64_t> flushed_at_unix_ms{0};

  std::string why_not() const;
  // Returns the new why_version.
  uint64_t set_why_not(std::string_view why);
  // Moves with every set_why_not: a worker whose last word was overwritten by another's says it again.
  std::atomic<uint64_t> why_version{0};

 private:
  mutable std::mutex mu_;
  std::string why_not_;   // under mu_: written only when it changes
};

class CacheFingerprints {
 public:
  static constexpr size_t kMaxFingerprints = 5000;
  static constexpr size_t kTextLength = 512;
  explicit CacheFingerprints(size_t max = kMaxFingerprints) : max_(max) {}

  // The entry of `fingerprint`, made on first sight; null when the table is full.
  std::shared_ptr<CacheFingerprint> get(uint64_t fingerprint, std::string_view normalized);
  // The entry if there is one (made by a DISABLE beyond the cap, say).
  std::shared_ptr<CacheFingerprint> find(uint64_t fingerprint) const;
  // CACHE DISABLE / ENABLE. DISABLE makes the entry when there is none, beyond the cap if need be.
  void set_disabled(uint64_t fingerprint, bool disabled);
  // CACHE FLUSH QUERY at `unix_ms`; makes the entry as set_disabled does.
  void set_flushed(uint64_t fingerprint, uint64_t unix_ms);
  // Moves with every set_disabled and set_flushed: a text whose fingerprint had no entry looks again.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  // Every entry, by fingerprint.
  std::vector<std::shared_ptr<const CacheFingerprint>> snapshot() const;

 private:
  const size_t max_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<CacheFingerprint>> by_fingerprint_;
  std::atomic<uint64_t> version_{0};
};

using CacheRules = std::vector<cache::CacheRule>;

// The rules of a database entry as the cache applies them; null when it has none.
std::shared_ptr<const CacheRules> cache_rules(const std::vector<conf::CacheRuleSettings>& rules);

// A text's policy facts, in its AccessMemo entry. Worker thread only.
struct CacheTextPolicy {
  bool ready = false;                              // filled on the text's first lookup
  uint64_t fingerprint = 0;
  cache::CacheHint hint;
  std::shared_ptr<CacheFingerprint> stats;         // null: no room (see CacheFingerprints)
  uint64_t stats_version = 0;                      // CacheFingerprints::version() when looked for
  std::string published;                           // the why_not this worker last set on `stats`...
  uint64_t published_version = 0;                  // ...and its why_version then
  // The rules' verdict, and what it was made under.
  std::shared_ptr<const cache::FetchedCatalog> rules_view;
  std::shared_ptr<const CacheRules> rules_of;
  cache::RuleVerdict rules;
};

// One session's policy: its database's rules and default TTL over the shared fingerprints.
class CachePolicy {
 public:
  CachePolicy(CacheFingerprints& fingerprints, std::shared_ptr<const CacheRules> rules, cache::Ttl default_ttl)
      : fingerprints_(fingerprints), rules_(std::move(rules)), default_ttl_(default_ttl) {}

  // The policy facts of `text` (hint, fingerprint, counters), made on first use.
  CacheTextPolicy& text(CacheTextPolicy& p, std::string_view text);
  // A lookup that goes to the server because `why` (a judgement's reason): counted, and shown.
  void refused(CacheTextPolicy& p, std::string_view why);
  // A nocache hint or CACHE DISABLE: true (counted, shown) when the text may not be cached.
  bool refuses(CacheTextPolicy& p);

  struct Decision {
    std::optional<cache::Ttl> ttl;                 // cache with this; nullopt: not cached
    const std::vector<cache::RelationName>* missing = nullptr;   // rules wait for these names
  };
  // For a read judge_read found cacheable under `view`: what the rules and the hint decide.
  Decision decide(CacheTextPolicy& p, const cache::ReadJudgement& read, const std::shared_ptr<const cache::FetchedCatalog>& view);

  void hit(CacheTextPolicy& p, cache::Ttl ttl);
  void miss(CacheTextPolicy& p, cache::Ttl ttl);

 private:
  void publish(CacheTextPolicy& p, std::string_view why);
  CacheFingerprints& fingerprints_;
  std::shared_ptr<const CacheRules> rules_;
  cache::Ttl default_ttl_;
};

}  // namespace pgrelay::proxy
