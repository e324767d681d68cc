// Redis Sentinel: where the Redis primary is now ([cache] redis_sentinels, redis_master_name).
//
// One per process, shared by every worker's Redis connections (RedisOptions::sentinel). A
// connection that opens asks resolve() for the master's address, connects there, and checks
// with ROLE (pipelined behind AUTH and SELECT) that it reached a master: a sentinel's stale
// answer never makes pgrelay write to a replica. A connection that finds a replica (ROLE) or is
// refused a write (READONLY) says so with not_master() and drops itself; the next call opens a
// new connection, which asks again (the callers' breakers pace that, not a tight loop). The
// invalidation channel's worker also calls resolve() every second, so a failover is followed
// even while the old primary still answers: generation() moves whenever the master's address
// changes, and every connection opened under an older generation is dropped at its next call.
//
// Threading: resolve() runs on the caller's executor (any worker's); the state it records is
// behind a mutex, read from every worker.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "conf/redis_sentinels.h"
#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/net/redis_reply.h"

namespace pgrelay::proxy {

// SENTINEL get-master-addr-by-name's reply: [host, port]. nullopt (with `why`) for nil (the
// sentinel does not monitor that name) or anything else. Pure.
std::optional<conf::SentinelAddress> parse_master_address(const RedisReply& reply, std::string& why);
// ROLE's reply says "master" (its first element). Pure.
bool is_master_role(const RedisReply& reply);
// ROLE's first element ("slave", "sentinel", ...) for a log line; "?" when unreadable. Pure.
std::string role_name(const RedisReply& reply);
// A write refused because the server is a replica now ("-READONLY You can't write ..."). Pure.
bool is_readonly_error(const RedisReply& reply);

// SENTINEL MASTER NAME's reply (field, value, field, value, ...): its "config-epoch", which
// each failover raises. nullopt when it has none. Pure.
std::optional<uint64_t> parse_config_epoch(const RedisReply& reply);

// One sentinel's answer: where it says the master is, and the config epoch it says that under.
struct SentinelAnswer {
  conf::SentinelAddress address;
  uint64_t config_epoch = 0;   // 0: it did not say
};

// Which answer to believe (pure, so it is unit-tested): the one with the highest config epoch
// (a sentinel that has not heard of the last failover yet names the old master under an older
// epoch), the first asked among equals; an answer naming the address a connection found not to
// be the master (ROLE, READONLY) only when no answer names anything else. nullopt: no answer.
std::optional<conf::SentinelAddress> choose_master(const std::vector<SentinelAnswer>& answers,
                                                   const std::optional<conf::SentinelAddress>& not_master);

struct SentinelSettings {
  std::vector<conf::SentinelAddress> sentinels;   // asked in this order
  std::string master_name;
  std::string password;                           // AUTH to the sentinels ("" = none)
};

class RedisSentinel {
 public:
  using Deadline = std::chrono::steady_clock::time_point;

  explicit RedisSentinel(SentinelSettings settings);

  struct Master {
    conf::SentinelAddress address;
    uint64_t generation = 0;   // generation() when it was recorded
  };
  // Asks every sentinel, in order, each within its share of what is left of `deadline`, where
  // the master is and under which config epoch; believes the answer choose_master() picks and
  // records it. The address, or why no sentinel answered (each one's reason).
  awaitable<Result<Master>> resolve(asio::any_io_executor ex, Deadline deadline);

  // A connection to `address` found a replica there (ROLE), or was refused a write (READONLY).
  void not_master(const conf::SentinelAddress& address);
  // A connection to `address` found a master there (ROLE): sentinels naming it are believed again.
  void confirmed(const conf::SentinelAddress& address);

  // Moves each time the recorded master's address changes.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // Changes of the master's address seen after the first answer: the failovers followed.
  uint64_t failovers() const { return failovers_.load(std::memory_order_relaxed); }
  // The master's address as last recorded ("" before the first answer).
  std::string master() const;
  const SentinelSettings& settings() const { return settings_; }

 private:
  // Records `address` as the master; the generation it is the master of.
  uint64_t record(const conf::SentinelAddress& address);
  awaitable<Result<SentinelAnswer>> ask(asio::any_io_executor ex, const conf::SentinelAddress& sentinel, Deadline deadline);

  const SentinelSettings settings_;
  mutable std::mutex mutex_;
  std::optional<conf::SentinelAddress> master_;       // guarded by mutex_
  std::optional<conf::SentinelAddress> not_master_;   // guarded by mutex_: last found a replica
  std::atomic<uint64_t> generation_{1};
  std::atomic<uint64_t> failovers_{0};
};

}  // namespace pgrelay::proxy
