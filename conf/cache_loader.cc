// The query-result cache's keys: [cache] and [databases.NAME.cache] (docs/cache.md).
#include "conf/cache_loader.h"

#include <cctype>

#include "conf/redis_sentinels.h"
#include "conf/redis_url.h"

namespace pgrelay::conf {
namespace {

// "name" or "schema.name", each part an identifier as SQL writes it: unquoted folded to lower
// case, "quoted" kept ("" for a quote). False when it is not one.
bool parse_table_name(std::string_view text, CacheRuleSettings& rule) {
  std::vector<std::string> parts(1);
  std::vector<bool> quoted_part(1, false);
  bool in_quotes = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_quotes) {
      if (c != '"') {
        parts.back() += c;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        parts.back() += '"';
        ++i;
      } else {
        in_quotes = false;
      }
    } else if (c == '"') {
      if (!parts.back().empty()) return false;   // a quote in the middle of a name
      in_quotes = quoted_part.back() = true;
    } else if (c == '.') {
      if (parts.back().empty()) return false;
      parts.emplace_back();
      quoted_part.push_back(false);
    } else if (quoted_part.back() || std::isspace(static_cast<unsigned char>(c))) {
      return false;   // after a closing quote, or blanks
    } else {
      parts.back() += char(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (in_quotes || parts.size() > 2 || parts.back().empty()) return false;
  rule.table = parts.back();
  rule.schema = parts.size() == 2 ? parts[0] : "";
  return true;
}

// "0x" optional, then 1..16 hex digits.
bool parse_fingerprint(std::string_view text, uint64_t& out) {
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
  if (text.empty() || text.size() > 16) return false;
  out = 0;
  for (char c : text) {
    const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                  : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                              : -1;
    if (d < 0) return false;
    out = out << 4 | uint64_t(d);
  }
  return true;
}

// redis_key_prefix: what SCAN MATCH and KEYS patterns can hold without escaping.
bool valid_key_prefix(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.' && c != ':') return false;
  }
  return true;
}

// A Sentinel master name: what SENTINEL get-master-addr-by-name takes as one word.
bool valid_master_name(std::string_view text) {
  if (text.empty() || text.size() > 128) return false;
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// [cache]'s Sentinel keys (docs/cache.md, "Redis Sentinel"): the sentinels, the master's name
// (required with them), the sentinels' own password. The data connections' credentials stay
// redis_url's.
void read_sentinel_keys(TableReader& r, CacheSettings& c) {
  std::vector<std::string> items;
  if (r.read_string_list("redis_sentinels", /*allow_single=*/true, /*allow_empty=*/false, items)) {
    auto sentinels = parse_sentinel_list(items);
    if (sentinels) c.redis_sentinels = std::move(sentinels).value();
    else r.error("redis_sentinels", sentinels.error().message);
  }
  std::string text;
  if (r.read_string("redis_master_name", text)) {
    if (valid_master_name(text)) c.redis_master_name = text;
    else r.error("redis_master_name", "expected the master's name as the sentinels know it (1 to 128 bytes, no blanks), got \"" + text + "\"");
  }
  r.read_string("redis_sentinel_password", c.redis_sentinel_password, /*secret=*/true);
  if (!c.redis_sentinels.empty() && c.redis_master_name.empty() && !r.has("redis_master_name")) {
    r.error("redis_sentinels", "expected redis_master_name beside it (the name the sentinels monitor the primary under), got none");
  }
  if (c.redis_sentinels.empty() && !r.has("redis_sentinels")) {
    for (std::string_view key : {"redis_master_name", "redis_sentinel_password"}) {
      if (r.has(key)) r.error(key, "expected redis_sentinels beside it, got no redis_sentinels");
    }
  }
  if (!c.redis_sentinels.empty() && c.redis && c.redis->kind == RedisEndpoint::Kind::kUnix) {
    r.error("redis_url", "expected redis:// or rediss:// with redis_sentinels (the sentinels name a host and port), got unix://");
  }
}

// [cache]'s Redis keys (docs/cache.md, the Redis tier). REDIS_URL applies later, when redis_url is absent.
void read_redis_keys(TableReader& r, CacheSettings& c) {
  std::string text;
  if (r.read_string("redis_url", text, /*secret=*/true)) {
    auto endpoint = parse_redis_url(text);
    if (endpoint) c.redis = std::move(endpoint).value();
    else r.error("redis_url", endpoint.error().message);
  }
  r.read_duration("redis_timeout", false, c.redis_timeout);
  // The lease (docs/cache.md, "Leases"): renewed every fifth of it, so not below the ping
  // interval's reach of a loaded Redis; a commit may wait one length for a stopped instance.
  constexpr Duration kLeaseMin{50}, kLeaseMax{5000};
  if (r.read_duration("redis_lease", false, c.redis_lease) && (c.redis_lease < kLeaseMin || c.redis_lease > kLeaseMax)) {
    r.error("redis_lease", "expected a duration from 50ms to 5s, got " + std::to_string(c.redis_lease.count()) + "ms");
  }
  if (r.read_string("redis_key_prefix", text)) {
    if (valid_key_prefix(text)) c.redis_key_prefix = text;
    else r.error("redis_key_prefix", "expected 1 to 64 letters, digits, '_', '-', '.' or ':', got \"" + text + "\"");
  }
  read_sentinel_keys(r, c);
}

// [cache]'s warming keys (docs/cache.md, warming).
void read_warm_keys(TableReader& r, CacheSettings& c) {
  int n = 0;
  if (r.read_int("warm_statements", 0, 100'000, n)) c.warm_statements = uint32_t(n);
  if (r.read_int("warm_rate", 1, 1'000'000, n)) c.warm_rate = uint32_t(n);
  r.read_string("warm_file", c.warm_file);
  r.read_bool("warm_on_start", c.warm_on_start);
  r.read_duration("warm_save_interval", false, c.warm_save_interval);
}

// A replication slot's name as PostgreSQL takes it: lower-case letters, digits and '_', 1 to 63.
bool valid_slot_name(std::string_view text) {
  if (text.empty() || text.size() > 63) return false;
  for (char c : text) {
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '_') return false;
  }
  return true;
}

// [databases.NAME.cache]'s replication keys.
void read_replication_keys(TableReader& r, ReplicationSettings& s) {
  r.read_bool("replication", s.enabled);
  std::string text;
  if (r.read_string("publication", text)) {
    if (!text.empty() && text.size() <= 63 && text.find('\0') == std::string::npos) s.publication = text;
    else r.error("publication", "expected a publication name of 1 to 63 bytes, got \"" + text + "\"");
  }
  if (r.read_string("replication_slot", text)) {
    if (valid_slot_name(text)) s.slot = text;
    else r.error("replication_slot", "expected 1 to 63 lower-case letters, digits or '_' (a replication slot's name), got \"" + text + "\"");
  }
  r.read_bool("replication_slot_persistent", s.slot_persistent);
  for (std::string_view key : {"publication", "replication_slot", "replication_slot_persistent"}) {
    if (r.has(key) && !s.enabled) r.error(key, "expected replication = true beside it, got no replication");
  }
}

// One [[...rules]] table.
void read_rule(TableReader& r, std::vector<CacheRuleSettings>& rules) {
  CacheRuleSettings rule;
  std::string text;
  const bool has_table = r.read_string("table", text);
  if (has_table && !parse_table_name(text, rule))
    r.error("table", "expected a table name (\"name\" or \"schema.name\", SQL identifiers), got \"" + text + "\"");
  if (r.read_string("fingerprint", text)) {
    uint64_t fp = 0;
    if (parse_fingerprint(text, fp)) rule.fingerprint = fp;
    else r.error("fingerprint", "expected a fingerprint (16 hex digits, as SHOW QUERIES prints it), got \"" + text + "\"");
  }
  if (r.has("table") && r.has("fingerprint")) r.error("fingerprint", "expected table or fingerprint in a rule, not both");
  if (!r.has("table") && !r.has("fingerprint")) r.table_error("expected table or fingerprint in every rule, got neither");
  const bool has_ttl = r.read_duration("ttl", false, rule.ttl);
  const bool cache_read = r.read_bool("cache", rule.cache);
  if (!rule.cache && has_ttl) r.error("ttl", "expected no ttl in a rule with cache = false (it never caches)");
  if (rule.cache && !r.has("ttl") && (cache_read || !r.has("cache")))
    r.table_error("expected ttl or cache = false in every rule, got neither");
  r.reject_unknown_keys();
  rules.push_back(std::move(rule));
}

// [[prefix.rules]]: appended to `rules`.
void read_rules(TableReader& r, std::vector<CacheRuleSettings>& rules) {
  const toml::array* array = r.read_table_array("rules");
  if (!array) return;
  int number = 0;
  for (const toml::node& element : *array) {
    TableReader sub(*element.as_table(), r.prefix() + ".rules[" + std::to_string(++number) + "]", r.diagnostics());
    read_rule(sub, rules);
  }
}

}  // namespace

void read_cache_section(TableReader& r, Config& cfg) {
  CacheSettings& c = cfg.cache;
  r.read_bool("enabled", c.enabled);
  r.read_duration("default_ttl", false, c.default_ttl);
  r.read_size("memory_budget", 1u << 20, 0xFFFFFFFFu, c.memory_budget);
  r.read_size("max_entry_size", 1024, 1u << 30, c.max_entry_size);
  r.read_size("compress_threshold", 64, 1u << 30, c.compress_threshold);
  read_rules(r, c.rules);
  read_redis_keys(r, c);
  read_warm_keys(r, c);
  for (std::string_view per_database : {"replication", "publication", "replication_slot", "replication_slot_persistent"}) {
    if (r.has(per_database)) {
      r.error(per_database, "expected it in [databases.NAME.cache] (a listener per server database), not in [cache]");
      bool flag = false;
      std::string text;
      (void)(per_database == "publication" || per_database == "replication_slot" ? r.read_string(per_database, text)
                                                                                : r.read_bool(per_database, flag));   // now known: reported once
    }
  }
  if (c.max_entry_size > c.memory_budget / 4) {
    r.error("max_entry_size", "expected at most a quarter of memory_budget (" + std::to_string(c.memory_budget / 4) +
                                  " bytes), got " + std::to_string(c.max_entry_size));
  }
  r.reject_unknown_keys();
}

void read_database_cache(TableReader& r, DatabaseEntry& entry) {
  const toml::table* table = r.read_table("cache");
  if (!table) return;
  TableReader sub(*table, dotted_key(r.prefix(), "cache"), r.diagnostics());
  sub.read_bool("enabled", entry.cache.enabled);
  sub.read_duration("default_ttl", false, entry.cache.default_ttl);
  read_rules(sub, entry.cache.rules);   // after [cache]'s, which entry.cache holds already
  read_replication_keys(sub, entry.cache.replication);
  for (std::string_view process_wide : {"memory_budget", "max_entry_size", "compress_threshold", "redis_url",
                                        "redis_timeout", "redis_key_prefix", "redis_lease", "redis_sentinels",
                                        "redis_master_name", "redis_sentinel_password"}) {
    if (sub.has(process_wide)) {
      sub.error(process_wide, "expected it in [cache] (one budget for the whole process), not per database");
      uint32_t ignored = 0;
      (void)sub.read_size(process_wide, 0, 0xFFFFFFFFu, ignored);   // now a known key: reported once
    }
  }
  sub.reject_unknown_keys();
}

void check_database_replication(TableReader& r, const DatabaseEntry& entry) {
  if (!entry.cache.replication.enabled) return;
  const toml::table* table = r.read_table("cache");
  if (!table) return;
  TableReader sub(*table, dotted_key(r.prefix(), "cache"), r.diagnostics());
  if (entry.name == "*") {
    sub.error("replication", "expected it in a named database entry (the \"*\" fallback has no one server database), got it in \"*\"");
  } else if (entry.user.empty()) {
    sub.error("replication", "expected the database's user (or the url's) set: the listener logs in as that role, which needs "
                             "REPLICATION (and, to create the publication, superuser or a publication named with publication), got none");
  } else if (!entry.cache.enabled) {
    sub.error("replication", "expected enabled = true (for this database or in [cache]) with replication = true, got the cache off");
  }
}

}  // namespace pgrelay::conf
