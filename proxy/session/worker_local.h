// What a worker thread owns and lends to the sessions it runs. Used from that thread only: nothing
// in it is shared with another worker, so the hot path takes no lock for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>
#include <memory>

#include "analyzer/query_stats.h"
#include "cache/replica_judgement.h"
#include "protocol/bytes.h"
#include "proxy/base/startup_params.h"
#include "proxy/request/statement_analysis.h"
#include "proxy/session/query_cache.h"
#include "proxy/session/shared_channel.h"

namespace pgrelay::proxy {

class LaneSet;
struct LaneEntry;

struct WorkerLocal {
  // `fingerprint_length` > 0: analyses carry fingerprints (query_stats on), and with `constants`
  // where their constants are (N+1 detection on).
  WorkerLocal(size_t fingerprint_length, bool constants, analyzer::QueryStatsShard& shard)
      : analyses(2048, fingerprint_length, constants), query_stats(shard) {}

  AnalysisCache analyses;                  // statement analyses by text
  analyzer::QueryStatsShard& query_stats;  // this worker's share of the per-fingerprint statistics
  AccessMemo accesses;                     // access analyses by text (the query cache, read routing)
  // Read routing's judgements by statement fingerprint (constants do not change what a replica
  // may run; pgbench's texts with inline constants would each cost a libpg_query parse), with
  // the catalog facts each was made under (held, so a freed view's address is not reused).
  struct ReplicaVerdict {
    std::shared_ptr<const cache::FetchedCatalog> facts;
    cache::ReplicaJudgement judgement;
  };
  static constexpr size_t kMaxReplicaVerdicts = 4096;   // then it starts over
  std::unordered_map<uint64_t, ReplicaVerdict> replica_verdicts;
  std::unique_ptr<SharedTier> shared_tier; // the query cache's Redis tier (made by the first session to use it)
  std::unique_ptr<SharedChannel> shared_channel;   // its invalidation channel: worker 0's only (Worker::start)
  // The ParameterStatus messages last encoded for a login greeting, and the (immutable, shared)
  // map they encode: clients of a pool with the same startup settings share one map, so most
  // logins copy these bytes instead of encoding a dozen messages.
  std::shared_ptr<const ParamMap> greeted;
  protocol::Buffer greeting;
  // The startup settings of the last login here: the next one that sent the same shares them
  // (most connections of an application look alike), so an idle client holds no copy.
  std::shared_ptr<const std::vector<Setting>> shared_settings = std::make_shared<const std::vector<Setting>>();
  std::shared_ptr<const std::vector<Setting>> share_settings(std::vector<Setting> settings) {
    if (*shared_settings != settings) shared_settings = std::make_shared<const std::vector<Setting>>(std::move(settings));
    return shared_settings;
  }
  // Pipelining's lanes (session/lane.h), made by the first session to use one.
  std::shared_ptr<LaneSet> lanes;
  // Answered lane entries, their buffers' capacity kept for the next pipelined statement on this
  // worker (client_lane.cc): as BufferPool's buffers, they follow the busy clients, not the
  // connected ones. At most kSpareLaneEntries; an entry the lane still holds is not taken back.
  static constexpr size_t kSpareLaneEntries = 64;
  std::vector<std::shared_ptr<LaneEntry>> spare_lane_entries;
  // Set by the worker: a session's life is over (ClientSession::launch), on this thread.
  std::function<void(uint64_t client_id)> session_over;
};

}  // namespace pgrelay::proxy
