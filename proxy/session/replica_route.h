// One client session's read routing (docs/replicas.md, client_replicas.cc): its database's
// replicas and their pools, where its server came from, and what its reads must see.
//
// Owned by the ClientSession (made at login when read routing is on for the client) and touched
// only on its executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/bytes.h"
#include "proxy/net/asio.h"
#include "proxy/pool/pool.h"
#include "proxy/pool/replica_set.h"

namespace pgrelay::proxy {

struct ReplicaRoute {
  std::shared_ptr<ReplicaSet> set;
  std::vector<std::shared_ptr<Pool>> pools;   // one per replica, in the set's order
  int attached = -1;                          // the replica the attached server came from; -1: primary
  bool routed = false;                        // the last choice was for a read (replica or not)
  bool counted = false;                       // the attached server counts as a read outstanding
  bool wrote = false;                         // the transaction in progress sent a write
  std::optional<uint64_t> written_at;         // PrimaryPositions::begun() when its last write committed
  Lsn must_see = 0;                           // the primary's position after it, once sampled
  std::shared_ptr<Event> drained;             // leave_replica() waits: nothing in flight, or the pump ended
  protocol::Buffer resend;                    // a lone Query on a replica, until a reply reaches the client
  std::string begun;                          // the plain BEGIN the primary's transaction ran, and nothing else
  std::chrono::milliseconds catalog_max_age{60'000};   // the cache's facts are this fresh (default_ttl)
};

}  // namespace pgrelay::proxy
