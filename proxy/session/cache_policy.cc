// The query cache's policy in the proxy: hints, rules, CACHE ENABLE/DISABLE, SHOW CACHES' counters.
#include "proxy/session/cache_policy.h"

#include "analyzer/fingerprint.h"
#include "proxy/base/log.h"

namespace pgrelay::proxy {

std::string CacheFingerprint::why_not() const {
  std::lock_guard lock(mu_);
  return why_not_;
}

uint64_t CacheFingerprint::set_why_not(std::string_view why) {
  std::lock_guard lock(mu_);
  why_not_ = why;
  return why_version.fetch_add(1, std::memory_order_relaxed) + 1;
}

std::shared_ptr<CacheFingerprint> CacheFingerprints::get(uint64_t fingerprint, std::string_view normalized) {
  std::lock_guard lock(mu_);
  auto it = by_fingerprint_.find(fingerprint);
  if (it != by_fingerprint_.end()) return it->second;
  if (by_fingerprint_.size() >= max_) return nullptr;
  auto entry = std::make_shared<CacheFingerprint>(fingerprint, std::string(normalized.substr(0, kTextLength)));
  by_fingerprint_.emplace(fingerprint, entry);
  return entry;
}

std::shared_ptr<CacheFingerprint> CacheFingerprints::find(uint64_t fingerprint) const {
  std::lock_guard lock(mu_);
  auto it = by_fingerprint_.find(fingerprint);
  return it == by_fingerprint_.end() ? nullptr : it->second;
}

void CacheFingerprints::set_disabled(uint64_t fingerprint, bool disabled) {
  std::lock_guard lock(mu_);
  if (!disabled && !by_fingerprint_.contains(fingerprint)) return;   // never disabled: nothing to undo
  auto& entry = by_fingerprint_[fingerprint];
  if (!entry) entry = std::make_shared<CacheFingerprint>(fingerprint, "");   // not seen yet: its text comes later
  entry->disabled.store(disabled, std::memory_order_release);
  // Shown at once; an ENABLE'd text's own reason (or none) comes back with its next lookup.
  if (disabled || entry->why_not() == "disabled") entry->set_why_not(disabled ? "disabled" : "");
  version_.fetch_add(1, std::memory_order_acq_rel);
}

void CacheFingerprints::set_flushed(uint64_t fingerprint, uint64_t unix_ms) {
  std::lock_guard lock(mu_);
  auto& entry = by_fingerprint_[fingerprint];
  if (!entry) entry = std::make_shared<CacheFingerprint>(fingerprint, "");
  entry->flushed_at_unix_ms.store(unix_ms, std::memory_order_release);
  version_.fetch_add(1, std::memory_order_acq_rel);
}

std::vector<std::shared_ptr<const CacheFingerprint>> CacheFingerprints::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const CacheFingerprint>> out;
  out.reserve(by_fingerprint_.size());
  for (const auto& [fp, entry] : by_fingerprint_) out.push_back(entry);
  return out;
}

std::shared_ptr<const CacheRules> cache_rules(const std::vector<conf::CacheRuleSettings>& rules) {
  if (rules.empty()) return nullptr;
  auto out = std::make_shared<CacheRules>();
  for (const conf::CacheRuleSettings& r : rules) {
    cache::CacheRule rule;
    if (r.fingerprint) rule.fingerprint = *r.fingerprint;
    else rule.table = cache::RelationName{r.schema, r.table};
    if (r.ttl.count() > 0) rule.ttl = r.ttl;
    rule.cache = r.cache;
    out->push_back(std::move(rule));
  }
  return out;
}

CacheTextPolicy& CachePolicy::text(CacheTextPolicy& p, std::string_view text) {
  if (!p.ready) {
    p.ready = true;
    p.hint = cache::parse_hint(text);
    if (!p.hint.malformed.empty()) log_warning("query cache: hint ignored: ", p.hint.malformed);
    // Default lexing, as SHOW QUERIES' fingerprints (standard_conforming_strings off may differ).
    analyzer::FingerprintOptions options;
    options.max_length = CacheFingerprints::kTextLength;
    analyzer::Fingerprint fp = analyzer::fingerprint(text, options);
    p.fingerprint = fp.hash;
    p.stats_version = fingerprints_.version();
    p.stats = fingerprints_.get(fp.hash, fp.normalized);
  } else if (!p.stats && p.stats_version != fingerprints_.version()) {
    p.stats_version = fingerprints_.version();   // a DISABLE may have made its entry
    p.stats = fingerprints_.find(p.fingerprint);
  }
  return p;
}

void CachePolicy::publish(CacheTextPolicy& p, std::string_view why) {
  if (!p.stats) return;
  if (p.published == why && p.published_version == p.stats->why_version.load(std::memory_order_relaxed)) return;
  p.published = why;
  p.published_version = p.stats->set_why_not(why);
}

void CachePolicy::refused(CacheTextPolicy& p, std::string_view why) {
  if (!p.stats) return;
  p.stats->misses.fetch_add(1, std::memory_order_relaxed);
  publish(p, why);
}

bool CachePolicy::refuses(CacheTextPolicy& p) {
  if (p.hint.nocache) {
    refused(p, "nocache hint");
    return true;
  }
  if (p.stats && p.stats->disabled.load(std::memory_order_acquire)) {
    refused(p, "disabled");
    return true;
  }
  return false;
}

CachePolicy::Decision CachePolicy::decide(CacheTextPolicy& p, const cache::ReadJudgement& read,
                                          const std::shared_ptr<const cache::FetchedCatalog>& view) {
  if (p.rules_view != view || p.rules_of != rules_) {   // once per text, view and rules
    p.rules = rules_ ? cache::apply_rules(*rules_, p.fingerprint, read, *view) : cache::RuleVerdict{};
    p.rules_view = view;
    p.rules_of = rules_;
  }
  Decision d;
  if (p.rules.pending()) {
    d.missing = &p.rules.missing;
    return d;
  }
  d.ttl = cache::effective_ttl(p.hint, p.rules, default_ttl_);
  if (!d.ttl) refused(p, "rule");
  return d;
}

void CachePolicy::hit(CacheTextPolicy& p, cache::Ttl ttl) {
  if (!p.stats) return;
  p.stats->hits.fetch_add(1, std::memory_order_relaxed);
  if (p.stats->ttl_ms.load(std::memory_order_relaxed) != ttl.count()) p.stats->ttl_ms.store(ttl.count(), std::memory_order_relaxed);
  publish(p, "");
}

void CachePolicy::miss(CacheTextPolicy& p, cache::Ttl ttl) {
  if (!p.stats) return;
  p.stats->misses.fetch_add(1, std::memory_order_relaxed);
  if (p.stats->ttl_ms.load(std::memory_order_relaxed) != ttl.count()) p.stats->ttl_ms.store(ttl.count(), std::memory_order_relaxed);
  publish(p, "");
}

}  // namespace pgrelay::proxy
