// The query-result cache in the admin console: SHOW CACHE, SHOW CACHES, CACHE FLUSH, CACHE ENABLE and
// DISABLE (docs/admin.md, docs/cache.md).
#include <charconv>

#include "analyzer/fingerprint.h"
#include "proxy/admin/admin_console.h"
#include "proxy/request/warm_list.h"
#include "proxy/session/shared_tier.h"

namespace pgrelay::proxy {
namespace {

using T = ResultSet::Type;

int64_t load(const std::atomic<uint64_t>& v) { return int64_t(v.load(std::memory_order_relaxed)); }

uint64_t parse_fingerprint(const std::string& hex) {
  uint64_t fingerprint = 0;
  std::from_chars(hex.data(), hex.data() + hex.size(), fingerprint, 16);   // the parser checked it
  return fingerprint;
}

}  // namespace

ResultSet AdminConsole::show_cache() const {
  ResultSet rs({{"entries", T::kInt},        {"bytes", T::kInt},         {"raw_bytes", T::kInt},
                {"budget_bytes", T::kInt},   {"hits", T::kInt},          {"misses", T::kInt},
                {"hit_ratio", T::kFloat},    {"not_cacheable", T::kInt}, {"pending", T::kInt},
                {"insertions", T::kInt},     {"evictions", T::kInt},     {"invalidated_generation", T::kInt},
                {"invalidated_ttl", T::kInt}, {"invalidated_flush", T::kInt}, {"rejected_raced", T::kInt},
                {"rejected_too_large", T::kInt}, {"fills_abandoned", T::kInt}, {"table_bumps", T::kInt},
                {"database_invalidations", T::kInt}, {"catalog_fetches", T::kInt}, {"catalog_fetch_failures", T::kInt},
                {"redis_hits", T::kInt}, {"redis_stale", T::kInt}, {"redis_stores", T::kInt}, {"redis_bumps", T::kInt},
                {"redis_bumps_owed", T::kInt}, {"redis_failures", T::kInt}, {"redis_breakers_open", T::kInt},
                {"redis_invalidations_sent", T::kInt}, {"redis_invalidations_received", T::kInt},
                {"redis_channel_up", T::kInt}, {"redis_lease", T::kInt}, {"redis_lease_renewals", T::kInt},
                {"redis_lease_hits", T::kInt}, {"redis_confirmed_hits", T::kInt}, {"redis_bump_waits", T::kInt},
                {"redis_bump_wait_timeouts", T::kInt}, {"redis_live_peers", T::kInt}, {"redis_windows_held", T::kInt},
                {"redis_window_ends", T::kInt}, {"warm_replayed", T::kInt},
                {"warm_filled", T::kInt}, {"warm_failed", T::kInt}, {"redis_master", T::kText},
                {"redis_failovers", T::kInt}});
  if (!services_.cache) return rs;
  const cache::MemoryStats s = services_.cache->store().stats();
  const QueryCacheCounters& c = services_.cache->counters();
  const uint64_t lookups = s.hits + s.misses();
  auto& row = rs.row();
  row.num(int64_t(s.entries))
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
      .num(load(c.catalog_fetch_failures))
      .num(load(c.shared_hits))
      .num(load(c.shared_stale))
      .num(load(c.shared_stores))
      .num(load(c.shared_bumps))
      .num(load(c.shared_bumps_owed))
      .num(load(c.shared_failures))
      .num(int64_t(c.shared_breakers_open.load(std::memory_order_relaxed)))
      .num(load(c.shared_invalidations_sent))
      .num(load(c.shared_invalidations_received))
      .num(int64_t(c.shared_channel_up.load(std::memory_order_relaxed)));
  const SharedLease* lease = services_.cache->lease();
  const auto now = std::chrono::steady_clock::now();
  row.num(int64_t(lease && now < lease->book().lease().until ? 1 : 0))
      .num(lease ? int64_t(lease->book().renewals()) : 0)
      .num(load(c.shared_lease_hits))
      .num(load(c.shared_confirmed_hits))
      .num(load(c.shared_bump_waits))
      .num(load(c.shared_bump_wait_timeouts))
      .num(lease ? int64_t(lease->book().live_peers(now)) : 0)
      .num(lease ? int64_t(lease->book().windows_held(now)) : 0)
      .num(load(c.shared_window_ends_received))
      .num(load(services_.cache->warm_list().counters().replayed))
      .num(load(services_.cache->warm_list().counters().filled))
      .num(load(services_.cache->warm_list().counters().failed));
  // Redis Sentinel: the master followed now ("" before the first answer) and the failovers since start.
  const auto& shared = services_.cache->shared();
  const RedisSentinel* sentinel = shared ? shared->sentinel.get() : nullptr;
  if (sentinel) row.text(sentinel->master()).num(int64_t(sentinel->failovers()));
  else row.null().num(int64_t(0));
  return rs;
}

ResultSet AdminConsole::show_caches() const {
  ResultSet rs({{"fingerprint", T::kText}, {"query", T::kText},  {"hits", T::kInt},      {"misses", T::kInt},
                {"entries", T::kInt},      {"bytes", T::kInt},   {"ttl_ms", T::kInt},    {"disabled", T::kText},
                {"why_not", T::kText}});
  if (!services_.cache) return rs;
  const auto usage = services_.cache->store().usage_by_fingerprint();
  for (const auto& f : services_.cache->fingerprints().snapshot()) {
    const auto u = usage.find(f->fingerprint);
    const int64_t ttl = f->ttl_ms.load(std::memory_order_relaxed);
    auto& row = rs.row()
                    .text(analyzer::fingerprint_hex(f->fingerprint))
                    .text(f->normalized)
                    .num(load(f->hits))
                    .num(load(f->misses))
                    .num(int64_t(u == usage.end() ? 0 : u->second.entries))
                    .num(int64_t(u == usage.end() ? 0 : u->second.bytes));
    if (ttl > 0) row.num(ttl);
    else row.null();
    row.text(f->disabled.load(std::memory_order_relaxed) ? "yes" : "no").text(f->why_not());
  }
  return rs;
}

Result<std::string> AdminConsole::cache_enable(const AdminCommand& c) {
  if (!services_.cache) return Error{"55000", "the query cache is not running (no [cache] or database enables it at start)"};
  const bool disable = c.verb == AdminCommand::Verb::kCacheDisable;
  const uint64_t fingerprint = parse_fingerprint(c.argument);
  // The flag first, so no lookup or fill starts after the flush; the flush drops the answers
  // and makes fills already running drop theirs.
  services_.cache->fingerprints().set_disabled(fingerprint, disable);
  if (!disable) return c.tag();
  return c.tag() + " " + std::to_string(services_.cache->store().flush_fingerprint(fingerprint));
}

Result<std::string> AdminConsole::cache_warm(const AdminCommand& c) {
  if (!services_.cache || !services_.control) return Error{"55000", "the query cache is not running"};
  const Result<size_t> queued = services_.control->warm_cache(c.argument);
  if (!queued.ok()) return queued.error();
  return c.tag() + " " + std::to_string(*queued);
}

awaitable<Result<std::string>> AdminConsole::cache_flush(const AdminCommand& c) {
  if (!services_.cache) co_return c.tag() + " 0";
  QueryCache& qc = *services_.cache;
  cache::MemoryStore& store = qc.store();
  // With the Redis tier, a flush reaches every instance through the shared versions (QUERY
  // only this one: Redis cannot find a query's answers, so this instance stops serving them).
  std::optional<SharedTier> tier;
  if (qc.shared() && c.subject != "QUERY") {
    auto ex = co_await asio::this_coro::executor;
    tier.emplace(ex, *qc.shared(), services_.tls.server(), qc.counters(), qc.lease());
  }
  size_t dropped = 0;
  std::string shared_error;
  if (c.subject == "QUERY") {
    const uint64_t fingerprint = parse_fingerprint(c.argument);
    if (qc.shared()) qc.fingerprints().set_flushed(fingerprint, unix_ms_now());
    dropped = store.flush_fingerprint(fingerprint);
  } else if (c.subject == "TABLE") {
    // "schema.name" or "name": every table of that name the sessions have resolved, in any
    // database (an answer about a table nobody resolved was never stored).
    const size_t dot = c.argument.rfind('.');
    cache::RelationName name{dot == std::string::npos ? "" : c.argument.substr(0, dot),
                             dot == std::string::npos ? c.argument : c.argument.substr(dot + 1)};
    for (const auto& [database, oid] : qc.tables_named(name)) {
      const cache::DatabaseId db = QueryCache::database_id(database);
      const cache::TableId table = QueryCache::table_id(db, oid);
      dropped += store.flush_table(table);
      if (!tier) continue;
      std::vector<cache::TableId> tables{table};
      const bool bumped = co_await tier->bump(db, std::move(tables), /*whole_database=*/false);
      if (!bumped) shared_error = "Redis did not take the bump of " + database + "'s table";
    }
  } else {
    dropped = store.flush_all();
    if (tier) {
      const Result<size_t> bumped = co_await tier->bump_all();
      if (!bumped) shared_error = bumped.error().message;
    }
  }
  if (!shared_error.empty()) {
    co_return Error{"58000", "CACHE FLUSH dropped " + std::to_string(dropped) +
                                 " answers from this instance's memory, but the Redis tier was not flushed: " +
                                 shared_error + "; run it again once Redis answers"};
  }
  co_return c.tag() + " " + std::to_string(dropped);
}

}  // namespace pgrelay::proxy
