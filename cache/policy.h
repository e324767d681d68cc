// The operator's and the application's say over what is cached: rules by table or fingerprint
// (from the config) and hints in the statement text (/* pgrelay:cache ttl=30s */,
// /* pgrelay:nocache */).
//
// Neither can make a read cacheable that judge_read refuses: they only shorten or lengthen its
// TTL, or refuse it. Precedence: a nocache hint or a `cache = false` rule refuses; otherwise the
// TTL is the shortest among the hint's and the matching rules', and default_ttl when none says.
// Pure: no I/O, no clocks, no logging; safe on any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/catalog.h"

namespace pgrelay::cache {

using Ttl = std::chrono::milliseconds;

// One rule: a table or a fingerprint, and what to do with the reads it matches.
struct CacheRule {
  // A table rule: the relation as configured (schema empty: resolved under the reader's
  // search_path, as the read's own names are). Matches a read that depends on it, directly or
  // through a view, or on a table of its inheritance family (a partition, its parent).
  std::optional<RelationName> table;
  // A fingerprint rule: the statement's fingerprint (analyzer/fingerprint.h's XXH3-64).
  std::optional<uint64_t> fingerprint;
  std::optional<Ttl> ttl;   // cache with this TTL
  bool cache = true;        // false: never cache what it matches

  bool operator==(const CacheRule&) const = default;
};

// What the rules say about one read.
struct RuleVerdict {
  bool refused = false;               // a matching rule says cache = false
  std::optional<Ttl> ttl;             // the shortest TTL of the matching rules
  // Table rules whose names the catalog view has not fetched yet: until they are, the verdict is
  // incomplete and the read is not cached (the caller fetches them like a read's own names).
  std::vector<RelationName> missing;
  [[nodiscard]] bool pending() const { return !refused && !missing.empty(); }
};

// The rules over a read `read` judged cacheable (its depends_on) under `catalog`, whose text
// has fingerprint `fingerprint`.
[[nodiscard]] RuleVerdict apply_rules(std::span<const CacheRule> rules, uint64_t fingerprint, const ReadJudgement& read,
                                      const CatalogView& catalog);

// Where a hint sends a statement when the database routes reads to replicas (docs/replicas.md).
enum class RouteHint { kNone, kPrimary, kReplica };

// A hint in the statement's comments.
struct CacheHint {
  bool nocache = false;           // /* pgrelay:nocache */
  std::optional<Ttl> ttl;         // /* pgrelay:cache ttl=30s */ (the shortest, when several)
  RouteHint route = RouteHint::kNone;   // /* pgrelay:primary */, /* pgrelay:replica */ (primary wins)
  std::string malformed;          // a comment that starts with "pgrelay:" but says nothing valid: what was wrong
};

// The hints in `sql`'s comments (/* ... */ and -- ..., PostgreSQL's own scanner: a "comment" in a
// string literal is not one). A comment whose text starts with "pgrelay:" is a hint:
//   pgrelay:nocache
//   pgrelay:cache [ttl=DURATION]     DURATION: 250ms, 30s, 5min, 2h, 1d, a bare number is seconds
//   pgrelay:primary, pgrelay:replica where a read goes (read replicas)
// Words are case-insensitive. A malformed hint is ignored (its problem in `malformed`); the
// others still count. Texts without "pgrelay:" cost one substring search.
[[nodiscard]] CacheHint parse_hint(std::string_view sql);

// "250ms", "30s", "5min", "2h", "1d", "1.5s", "30" (seconds): a TTL greater than 0 and at most a
// year; nullopt otherwise.
[[nodiscard]] std::optional<Ttl> parse_ttl(std::string_view text);

// The TTL an answer gets: a refusal is nullopt; else the shortest of the hint's and the rules',
// `default_ttl` when neither says.
[[nodiscard]] std::optional<Ttl> effective_ttl(const CacheHint& hint, const RuleVerdict& rules, Ttl default_ttl);

}  // namespace pgrelay::cache
