// QueryObserver: one session's statements, counted per fingerprint and checked for slowness.
//
// Attached to a session's StatementEvents when query_stats is on (with its first request, so a
// client that only logs in pays nothing). Each statement that ran — completed, failed, or an
// Execute stopped at its row limit (each such round trip counts as a call, as each is one) — is
// recorded in the worker's QueryStatsShard under its fingerprint, the session's database and
// user; one at or over slow_query_threshold also goes to the SlowQueryLog. Statements the
// server never ran (skipped after an error, abandoned, empty) are not counted. Session thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "analyzer/query_stats.h"
#include "conf/config.h"
#include "proxy/base/startup_params.h"
#include "proxy/request/statement_events.h"
#include "proxy/session/slow_query_log.h"

namespace pgrelay::proxy {

// Wall-clock microseconds since the epoch; `coarse` reads the kernel's tick-resolution clock
// (a few ms, and cheaper): enough for first/last seen, not for a slow execution's own time.
int64_t unix_micros(bool coarse);

// Who the statements are from: the session's own fields, which outlive its observer.
struct QueryOrigin {
  const std::string& database;
  const std::string& user;
  const std::string& client;                           // "address:port" or "[local]"
  const std::shared_ptr<const ParamMap>& parameters;   // application_name is read when needed
};

class QueryObserver : public StatementObserver {
 public:
  QueryObserver(analyzer::QueryStatsShard& shard, SlowQueryLog& slow, QueryOrigin origin, const conf::Config& config)
      : shard_(shard), slow_(slow), origin_(origin), config_(config) {}

  void on_start(const StatementStart& s) override;
  void on_end(const StatementEnd& e) override;
  bool wants_messages() const override { return false; }
  bool wants_response_bytes() const override { return false; }

 private:
  // With log_parameters: what a statement was sent with, until it ends.
  struct Sent {
    std::string text;
    std::vector<std::optional<std::string>> parameters;
  };
  SlowQuery slow_query(const StatementEnd& e, const analyzer::Fingerprint& fp, int64_t now_micros);

  analyzer::QueryStatsShard& shard_;
  SlowQueryLog& slow_;
  const QueryOrigin origin_;
  const conf::Config& config_;                          // the session's snapshot
  std::unordered_map<uint64_t, Sent> sent_;             // by seq; only with log_parameters
};

}  // namespace pgrelay::proxy
