// Cache warming's memory (docs/cache.md, "Warming"): the statements whose cached answers were hit
// most, each with the session that would compute the same cache key, so that a starting instance
// (or CACHE WARM) can run them again and have the normal fill path store their answers.
//
// Thread-safe: every worker's sessions call hit() on their cache hits; the warmer reads top()
// and seeds what an earlier run or another instance saved. The counting is approximate by
// design (bounded memory, halving when full): warming is best-effort. Pure: no I/O.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/bytes.h"
#include "protocol/result.h"
#include "proxy/request/handoff_state.h"

namespace pgrelay::proxy {

// An extended-protocol read as a client ran it, to replay as Parse (unnamed, these parameter
// types) Bind (unnamed portal: these formats, values and result formats) [Describe portal]
// Execute Sync: the cache key of that is the one the client's execution made, whether it used
// the unnamed statement or a named one (the key has no statement name).
struct WarmExtended {
  protocol::Buffer param_types;                            // the Parse's list as sent: count and OIDs
  std::vector<int16_t> param_formats;
  std::vector<std::optional<protocol::Buffer>> params;     // nullopt: NULL
  std::vector<int16_t> result_formats;
  bool describe = false;                                   // a Describe of the portal came with it
  bool operator==(const WarmExtended&) const = default;
  // The largest parameter values kept (all together): a read with more is not recorded.
  static constexpr size_t kMaxParamBytes = 64 * 1024;
};

// A statement to replay: its text (a lone simple Query, or the extended read `extended`) and who
// runs it. `session` holds the database, user, startup settings, reported parameters and SETs;
// never a credential, a cancel key or prepared statements.
struct WarmStatement {
  std::string text;
  std::shared_ptr<const HandoffState> session;
  uint64_t hits = 0;
  std::shared_ptr<const WarmExtended> extended;   // null: a simple Query
};

// What warm runs did, all runs of the process (SHOW CACHE, /metrics).
struct WarmCounters {
  std::atomic<uint64_t> replayed{0};   // statements sent and answered
  std::atomic<uint64_t> filled{0};     // of those: the answer was stored (from the server, or Redis's copy)
  std::atomic<uint64_t> cached{0};     // of those: already in memory (a hit)
  std::atomic<uint64_t> failed{0};     // an error, no answer, or the session could not be made
  std::atomic<uint64_t> skipped{0};    // not run: the user's server login needs the client's own credential
  std::atomic<uint64_t> runs{0};
};

class WarmList {
 public:
  // `per_database`: how many statements top() gives per database (warm_statements; 0: off).
  explicit WarmList(size_t per_database);

  bool enabled() const { return per_database_ > 0; }
  size_t per_database() const { return per_database_; }
  // A cache hit of `text`, whose whole cache key (database, user, settings, text, and for an
  // extended read its parameters and formats) hashes to `key_hash`. `describe` makes the
  // session's description and, for an extended read, `extended` its Bind (null: not recorded);
  // both are called only for a key not counted yet.
  using DescribeExtended = std::function<std::shared_ptr<const WarmExtended>()>;
  void hit(uint64_t key_hash, std::string_view text, const std::function<HandoffState()>& describe,
           const DescribeExtended& extended = nullptr);
  // Statements from an earlier run or another instance: counted with their hits until this
  // process stops, so that what it saves keeps them (merged by text and session).
  void seed(std::vector<WarmStatement> statements);
  // The hottest statements of `database` ("" = every database: per_database() of each), hottest first.
  std::vector<WarmStatement> top(std::string_view database) const;
  // The databases that have statements.
  std::vector<std::string> databases() const;

  WarmCounters& counters() { return counters_; }
  const WarmCounters& counters() const { return counters_; }

 private:
  struct Counted {
    std::string text;
    std::shared_ptr<const HandoffState> session;
    uint64_t hits = 0;
    std::shared_ptr<const WarmExtended> extended;
  };
  struct Stripe {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, Counted> by_key;
  };
  static constexpr size_t kStripes = 16;
  std::vector<WarmStatement> all() const;

  const size_t per_database_;
  const size_t per_stripe_;   // the bound on what is counted: a few times what is kept
  std::array<Stripe, kStripes> stripes_;
  mutable std::mutex seeds_mu_;
  std::vector<WarmStatement> seeds_;
  WarmCounters counters_;
};

// The saved form of a list (a warm_file, a Redis value): "PGRW", a version byte, a count, then
// per statement its hits, text and encoded session (handoff_state.h), and (version 2) its kind:
// 0 a simple Query, 1 an extended read with its WarmExtended. decode reads versions 1 and 2 and
// refuses another version, a truncated or oversized field, bytes left over.
void encode_warm_list(const std::vector<WarmStatement>& statements, protocol::Buffer& out);
Result<std::vector<WarmStatement>> decode_warm_list(protocol::Bytes in);

}  // namespace pgrelay::proxy
