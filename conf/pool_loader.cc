// The pool keys of the schema, shared by [pgrelay] and each [databases.NAME] table.
#include "conf/pool_loader.h"

#include <array>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace pgrelay::conf {
namespace {

constexpr std::array<std::string_view, 3> kPoolModes = {"session", "transaction", "statement"};
constexpr std::array<PoolMode, 3> kPoolModeValues = {PoolMode::kSession, PoolMode::kTransaction,
                                                     PoolMode::kStatement};
constexpr std::array<std::string_view, 2> kSessionStatePolicies = {"pin", "reject"};
constexpr std::array<SessionStatePolicy, 2> kSessionStatePolicyValues = {SessionStatePolicy::kPin,
                                                                         SessionStatePolicy::kReject};
constexpr int kMaxPoolSize = 10000;

}  // namespace

void read_pool(TableReader& r, PoolSettings& pool, std::string_view inherited_from) {
  size_t mode = 0;
  if (r.read_choice("pool_mode", kPoolModes, mode)) pool.pool_mode = kPoolModeValues[mode];
  size_t policy = 0;
  if (r.read_choice("session_state", kSessionStatePolicies, policy))
    pool.session_state = kSessionStatePolicyValues[policy];
  bool ok = true;
  if (r.has("default_pool_size") && inherited_from.empty()) {
    // PgBouncer's name for the [pgrelay] default, accepted so its users can keep theirs.
    if (r.has("pool_size")) r.error("default_pool_size", "expected either pool_size or default_pool_size, got both");
    ok &= r.read_int("default_pool_size", 1, kMaxPoolSize, pool.pool_size) || !r.has("default_pool_size");
  }
  ok &= r.read_int("pool_size", 1, kMaxPoolSize, pool.pool_size) || !r.has("pool_size");
  ok &= r.read_int("min_pool_size", 0, kMaxPoolSize, pool.min_pool_size) || !r.has("min_pool_size");
  ok &= r.read_int("max_pool_size", 0, kMaxPoolSize, pool.max_pool_size) || !r.has("max_pool_size");
  r.read_int("reserve_pool_size", 0, kMaxPoolSize, pool.reserve_pool_size);
  r.read_int("max_db_connections", 0, 1'000'000, pool.max_db_connections);
  ok &= r.read_number("scale_up_threshold", 0.01, 1.0, pool.scale_up_threshold) || !r.has("scale_up_threshold");
  ok &= r.read_number("scale_down_threshold", 0.0, 0.99, pool.scale_down_threshold) || !r.has("scale_down_threshold");
  r.read_duration("scale_down_delay", false, pool.scale_down_delay);
  r.read_string("server_reset_query", pool.server_reset_query);
  if (!ok) return;   // the bad value is already reported; orderings would only repeat it

  const std::string where = inherited_from.empty() ? "" : " from " + std::string(inherited_from);
  // Blames the first of `keys` this table set; a table that set none inherits a checked pair.
  auto blame = [&](std::initializer_list<std::pair<const char*, std::string>> keys) {
    for (const auto& [key, what] : keys) {
      if (r.has(key)) {
        r.error(key, what);
        return;
      }
    }
  };
  const std::string size_key = r.has("default_pool_size") && inherited_from.empty() ? "default_pool_size" : "pool_size";
  const std::string size_text = std::to_string(pool.pool_size);
  if (pool.min_pool_size > pool.pool_size) {
    blame({{"min_pool_size", "expected 0.." + size_key + " (" + size_text +
                                 (r.has(size_key) ? "" : where) + "), got " + std::to_string(pool.min_pool_size)},
           {size_key.c_str(), "expected at least min_pool_size (" + std::to_string(pool.min_pool_size) + where +
                                  "), got " + size_text}});
  }
  if (pool.max_pool_size > 0 && pool.max_pool_size < pool.pool_size) {
    blame({{"max_pool_size", "expected 0 (= " + size_key + ") or at least " + size_key + " (" + size_text +
                                 (r.has(size_key) ? "" : where) + "), got " + std::to_string(pool.max_pool_size)},
           {size_key.c_str(), "expected at most max_pool_size (" + std::to_string(pool.max_pool_size) + where +
                                  "), got " + size_text}});
  }
  if (pool.scale_down_threshold >= pool.scale_up_threshold) {
    std::ostringstream down, up;
    down << "expected less than scale_up_threshold (" << pool.scale_up_threshold
         << (r.has("scale_up_threshold") ? "" : where) << "), got " << pool.scale_down_threshold;
    up << "expected more than scale_down_threshold (" << pool.scale_down_threshold
       << (r.has("scale_down_threshold") ? "" : where) << "), got " << pool.scale_up_threshold;
    blame({{"scale_down_threshold", down.str()}, {"scale_up_threshold", up.str()}});
  }
}

}  // namespace pgrelay::conf
