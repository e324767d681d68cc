// Rules and hints: the operator's and the application's say over what is cached, and for how long.
#include "cache/policy.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <cctype>

#include "analyzer/chars.h"
#include "conf/duration.h"

namespace pgrelay::cache {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

using analyzer::chars::is_space;

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The next whitespace-separated word of `s`, consumed.
std::string_view next_word(std::string_view& s) {
  s = trim(s);
  size_t n = 0;
  while (n < s.size() && !is_space(s[n])) ++n;
  std::string_view word = s.substr(0, n);
  s.remove_prefix(n);
  return word;
}

void keep_shortest(std::optional<Ttl>& into, Ttl ttl) {
  if (!into || ttl < *into) into = ttl;
}

// One comment's text (without its /* */ or --); adds what it says to `hint`.
void read_comment(std::string_view body, CacheHint& hint) {
  body = trim(body);
  constexpr std::string_view kPrefix = "pgrelay:";
  if (body.size() < kPrefix.size() || !iequals(body.substr(0, kPrefix.size()), kPrefix)) return;
  std::string_view rest = body.substr(kPrefix.size());
  const std::string_view verb = next_word(rest);
  auto malformed = [&](std::string why) {
    if (hint.malformed.empty()) hint.malformed = std::move(why) + " in /* " + std::string(body) + " */";
  };
  if (iequals(verb, "nocache")) {
    if (!trim(rest).empty()) return malformed("pgrelay:nocache takes nothing after it");
    hint.nocache = true;
    return;
  }
  if (iequals(verb, "primary") || iequals(verb, "replica")) {
    if (!trim(rest).empty()) return malformed("pgrelay:" + std::string(verb) + " takes nothing after it");
    const RouteHint route = iequals(verb, "primary") ? RouteHint::kPrimary : RouteHint::kReplica;
    if (hint.route != RouteHint::kPrimary) hint.route = route;
    return;
  }
  if (!iequals(verb, "cache"))
    return malformed("expected pgrelay:cache, pgrelay:nocache, pgrelay:primary or pgrelay:replica");
  std::optional<Ttl> ttl;
  for (std::string_view word = next_word(rest); !word.empty(); word = next_word(rest)) {
    const size_t eq = word.find('=');
    if (eq == std::string_view::npos || !iequals(word.substr(0, eq), "ttl") || ttl)
      return malformed("expected ttl=DURATION after pgrelay:cache, got \"" + std::string(word) + "\"");
    ttl = parse_ttl(word.substr(eq + 1));
    if (!ttl) return malformed("expected a duration such as 250ms, 30s, 5min, 2h, got \"" + std::string(word.substr(eq + 1)) + "\"");
  }
  if (ttl) keep_shortest(hint.ttl, *ttl);
}

}  // namespace

RuleVerdict apply_rules(std::span<const CacheRule> rules, uint64_t fingerprint, const ReadJudgement& read,
                        const CatalogView& catalog) {
  RuleVerdict out;
  for (const CacheRule& rule : rules) {
    bool matches = false;
    if (rule.fingerprint) {
      matches = *rule.fingerprint == fingerprint;
    } else if (rule.table) {
      const RelationInfo* info = catalog.relation(*rule.table);
      if (!info) {
        out.missing.push_back(*rule.table);
        continue;
      }
      if (!info->found) continue;   // no such table under this search_path: nothing reads it
      auto in_family = [&](Oid oid) {
        return oid == info->oid || std::find(info->family.begin(), info->family.end(), oid) != info->family.end();
      };
      matches = std::any_of(read.depends_on.begin(), read.depends_on.end(), in_family);
    }
    if (!matches) continue;
    if (!rule.cache) out.refused = true;
    if (rule.ttl) keep_shortest(out.ttl, *rule.ttl);
  }
  if (out.refused) out.missing.clear();
  return out;
}

std::optional<Ttl> parse_ttl(std::string_view text) {
  // The config's duration syntax (units ms, s, min, h, d; at most 365 days), and not zero.
  const auto d = conf::parse_duration(text);
  if (!d.ok() || d->count() <= 0) return std::nullopt;
  return Ttl{*d};
}

CacheHint parse_hint(std::string_view sql) {
  CacheHint hint;
  // Most texts carry no hint: no scan for them.
  auto has_prefix = [](std::string_view s) {
    for (size_t at = s.find(':'); at != std::string_view::npos; at = s.find(':', at + 1)) {
      if (at >= 7 && iequals(s.substr(at - 7, 8), "pgrelay:")) return true;
    }
    return false;
  };
  if (!has_prefix(sql)) return hint;
  const std::string text_z(sql);   // the scanner wants a NUL-terminated string
  PgQueryScanResult scanned = pg_query_scan(text_z.c_str());
  PgQuery__ScanResult* tokens = nullptr;
  if (!scanned.error) {
    tokens = pg_query__scan_result__unpack(nullptr, scanned.pbuf.len, reinterpret_cast<const uint8_t*>(scanned.pbuf.data));
  }
  if (tokens) {
    for (size_t i = 0; i < tokens->n_tokens; ++i) {
      const PgQuery__ScanToken* t = tokens->tokens[i];
      if (!t || t->start < 0 || t->end > int32_t(sql.size()) || t->end <= t->start) continue;
      std::string_view body = sql.substr(size_t(t->start), size_t(t->end - t->start));
      if (t->token == PG_QUERY__TOKEN__C_COMMENT && body.size() >= 4) {
        body = body.substr(2, body.size() - 4);   // /* ... */
      } else if (t->token == PG_QUERY__TOKEN__SQL_COMMENT && body.size() >= 2) {
        body = body.substr(2);   // -- ...
      } else {
        continue;
      }
      read_comment(body, hint);
    }
    pg_query__scan_result__free_unpacked(tokens, nullptr);
  }
  pg_query_free_scan_result(scanned);
  return hint;
}

std::optional<Ttl> effective_ttl(const CacheHint& hint, const RuleVerdict& rules, Ttl default_ttl) {
  if (hint.nocache || rules.refused) return std::nullopt;
  std::optional<Ttl> ttl = hint.ttl;
  if (rules.ttl) keep_shortest(ttl, *rules.ttl);
  return ttl ? *ttl : default_ttl;
}

}  // namespace pgrelay::cache
