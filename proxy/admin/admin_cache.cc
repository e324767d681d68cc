// The query-result cache in the admin console: SHOW CACHE, CACHE FLUSH (docs/admin.md, docs/cache.md).
#include <charconv>

#include "proxy/admin/admin_console.h"

namespace pgrelay::proxy {
namespace {

using T = ResultSet::Type;

int64_t load(const std::atomic<uint64_t>& v) { return int64_t(v.load(std::memory_order_relaxed)); }

}  // namespace

ResultSet AdminConsole::show_cache() const {
  ResultSet rs({{"entries", T::kInt},        {"bytes", T::kInt},         {"raw_bytes", T::kInt},
                {"budget_bytes", T::kInt},   {"hits", T::kInt},          {"misses", T::kInt},
                {"hit_ratio", T::kFloat},    {"not_cacheable", T::kInt}, {"pending", T::kInt},
                {"insertions", T::kInt},     {"evictions", T::kInt},     {"invalidated_generation", T::kInt},
                {"invalidated_ttl", T::kInt}, {"invalidated_flush", T::kInt}, {"rejected_raced", T::kInt},
                {"rejected_too_large", T::kInt}, {"fills_abandoned", T::kInt}, {"table_bumps", T::kInt},
                {"database_invalidations", T::kInt}, {"catalog_fetches", T::kInt}, {"catalog_fetch_failures", T::kInt}});
  if (!services_.cache) return rs;
  const cache::MemoryStats s = services_.cache->store().stats();
  const QueryCacheCounters& c = services_.cache->counters();
  const uint64_t lookups = s.hits + s.misses();
  rs.row()
      .num(int64_t(s.entries))
      .num(int64_t(s.bytes))
      .num(int64_t(s.raw_bytes))
      .num(int64_t(s.budget_bytes))
      .num(int64_t(s.hits))
      .num(int64_t(s.misses()))
      .num(lookups ? double(s.hits) / double(lookups) : 0.0)
      .num(load(c.not_cacheable))
      .num(load(c.pending))
      .num(int64_t(s.insertions))
      .num(int64_t(s.evictions))
      .num(int64_t(s.invalidated_generation))
      .num(int64_t(s.invalidated_ttl))
      .num(int64_t(s.invalidated_flush))
      .num(int64_t(s.rejected_raced))
      .num(int64_t(s.rejected_too_large))
      .num(load(c.fills_abandoned))
      .num(load(c.table_bumps))
      .num(load(c.database_invalidations))
      .num(load(c.catalog_fetches))
      .num(load(c.catalog_fetch_failures));
  return rs;
}

size_t AdminConsole::cache_flush(const AdminCommand& c) {
  if (!services_.cache) return 0;
  cache::MemoryStore& store = services_.cache->store();
  if (c.subject == "QUERY") {
    uint64_t fingerprint = 0;
    std::from_chars(c.argument.data(), c.argument.data() + c.argument.size(), fingerprint, 16);
    return store.flush_fingerprint(fingerprint);
  }
  if (c.subject == "TABLE") {
    // "schema.name" or "name": every table of that name the sessions have resolved, in any
    // database (an answer about a table nobody resolved was never stored).
    const size_t dot = c.argument.rfind('.');
    cache::RelationName name{dot == std::string::npos ? "" : c.argument.substr(0, dot),
                             dot == std::string::npos ? c.argument : c.argument.substr(dot + 1)};
    size_t dropped = 0;
    for (const auto& [database, oid] : services_.cache->tables_named(name))
      dropped += store.flush_table(QueryCache::table_id(QueryCache::database_id(database), oid));
    return dropped;
  }
  return store.flush_all();
}

}  // namespace pgrelay::proxy
