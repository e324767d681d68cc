// The query-result cache's keys: [cache] and [databases.NAME.cache] (docs/cache.md).
#include "conf/cache_loader.h"

namespace pgrelay::conf {

void read_cache_section(TableReader& r, Config& cfg) {
  CacheSettings& c = cfg.cache;
  r.read_bool("enabled", c.enabled);
  r.read_duration("default_ttl", false, c.default_ttl);
  r.read_size("memory_budget", 1u << 20, 0xFFFFFFFFu, c.memory_budget);
  r.read_size("max_entry_size", 1024, 1u << 30, c.max_entry_size);
  r.read_size("compress_threshold", 64, 1u << 30, c.compress_threshold);
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
  for (std::string_view process_wide : {"memory_budget", "max_entry_size", "compress_threshold"}) {
    if (sub.has(process_wide)) {
      sub.error(process_wide, "expected it in [cache] (one budget for the whole process), not per database");
      uint32_t ignored = 0;
      (void)sub.read_size(process_wide, 0, 0xFFFFFFFFu, ignored);   // now a known key: reported once
    }
  }
  sub.reject_unknown_keys();
}

}  // namespace pgrelay::conf
