// The query cache's Redis tier as one worker sees it (docs/cache.md, "The Redis tier"): the
// shared versions of tables, answers stored for every pgrelay of a cluster, and the bumps that
// tell them all of a write.
//
// Redis holds, per database, one hash of versions (cache/shared_keys.h): who made it, the
// database's epoch and each written table's generation. With the tier on, an answer records the
// shared versions of what it read, as Redis had them before its query was sent, and is served
// (from memory or from Redis) only while Redis still has those versions. A commit through any
// pgrelay bumps them in Redis before its client hears of the commit. So a client that writes
// through one instance and then reads through another never gets the answer from before its
// write: the read asks Redis, and Redis already has the bump.
//
// Redis slow or away: every call returns within redis_timeout; a failure opens a breaker for a
// while (250 ms, doubling to 5 s) during which nothing waits for Redis: lookups are misses
// (answered by the server, never from an entry whose versions cannot be checked), fills are not
// stored, and bumps are owed: their databases' versions hashes are named anew once Redis answers
// again. With Redis Sentinel (net/redis_sentinel.h) a failover owes every database the worker
// knows the same way: the promoted replica may lack the last bumps.
// Until then other instances may serve what this one's writes changed, for at most the TTL.
//
// Leases (shared_lease.h, cache/lease_book.h): every bump, window and flush is published with a
// sequence number and, once Redis took it, waits until every instance that may serve memory
// hits unconfirmed has applied it, or for one lease length, before the caller goes on.
//
// One per worker (WorkerLocal), its own RedisConnection on the worker's loop, pipelining the
// calls of all the worker's sessions. Worker thread only.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "cache/generations.h"
#include "conf/redis_url.h"
#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/net/redis_connection.h"
#include "proxy/net/redis_sentinel.h"
#include "proxy/net/tls_context.h"

namespace pgrelay::proxy {

struct QueryCacheCounters;
class SharedLease;

// [cache]'s redis_* settings, as the process started with them.
struct SharedTierSettings {
  conf::RedisEndpoint endpoint;
  std::chrono::milliseconds timeout{5};
  std::string prefix = "pgrelay";
  std::chrono::milliseconds lease{300};   // redis_lease
  std::string instance;   // this process's id on the invalidation channel (random, per start, and the lease length)
  // With Redis Sentinel ([cache] redis_sentinels): where the master is, shared by every
  // connection of the process (the endpoint then gives only the scheme and the credentials).
  std::shared_ptr<RedisSentinel> sentinel;
};

// 32 random hex digits: a versions hash's id, a process's id on the channel.
std::string random_hex_id();
// Where the tier's Redis is, for log lines: "redis://app:***@cache:6379", or with Sentinel
// "127.0.0.1:6380 (the master \"NAME\", by Redis Sentinel)".
std::string redis_location(const SharedTierSettings& settings);

// What a cache lookup asks the Redis tier before it is a hit or a miss (CacheObserver::lookup).
struct SharedAsk {
  cache::DatabaseId database{};
  std::vector<cache::TableId> tables;   // the read's tables, whose shared versions are asked for
  std::string answer_key;               // the answer's Redis key (GET), when memory had none
};

class SharedTier {
 public:
  // `lease`: the process's (QueryCache::lease()), which bumps wait on; null: they do not wait.
  SharedTier(asio::any_io_executor ex, const SharedTierSettings& settings, SslCtxPtr tls, QueryCacheCounters& counters,
             SharedLease* lease);
  ~SharedTier();
  SharedTier(const SharedTier&) = delete;
  SharedTier& operator=(const SharedTier&) = delete;

  // What Redis said about a read: the shared versions of its tables now, and the answer stored
  // under its key when one was asked for (its value's bytes, undecoded).
  struct Check {
    bool ok = false;                               // false: Redis did not answer (a miss, no fill)
    cache::ReadSet now;                            // database, epoch and the tables asked, in order
    std::optional<std::vector<std::byte>> value;   // GET's value; nullopt: none stored
    bool window_open = false;                      // some instance runs a CALL or DO that may COMMIT inside
  };
  // `answer_key` empty: only the versions.
  awaitable<Check> check(cache::DatabaseId database, std::span<const cache::TableId> tables, std::string answer_key);

  // A commit made these tables' writes (or, `whole_database`, writes pgrelay cannot name)
  // visible: bumped in Redis. `schema`: it may have changed the schema too (DDL, CALL, DO), so
  // the other instances drop their catalog facts of the database. False when Redis did not
  // confirm: the bump is owed (see above).
  awaitable<bool> bump(cache::DatabaseId database, std::vector<cache::TableId> tables, bool whole_database, bool schema = false);

  // A CALL or DO that may COMMIT and run on is about to go out on `database` (the memory
  // tier's window, QueryCache::open_window, shared): its epoch is bumped and this worker joins
  // the database's windows set (cache/shared_keys.h) until kWindowHoldMs from now, renewed every
  // few seconds while it holds one, so no instance answers from or fills either tier meanwhile
  // (the statement's commits are visible before any bump names them). Awaited before the
  // statement is sent. False when Redis did not take it (the epoch bump is owed).
  awaitable<bool> open_window(cache::DatabaseId database);
  // The statement ended: when this worker holds no other window there, it leaves the set (the
  // commit's own bump invalidates what was written). When this process holds none there any
  // more, it bumps the epoch and publishes the end (cache/lease_messages.h's WindowEnd), so the
  // other instances serve that database under their lease again at once instead of after the
  // hold (an instance that misses it waits the hold out). In the background.
  void close_window(cache::DatabaseId database);

  // CACHE FLUSH: the epoch of every database whose versions hash Redis holds (SCAN, then one
  // HINCRBY each), so every instance's answers, in memory and in Redis, are stale at once.
  // The number of databases bumped, or why Redis did not take it (then nothing is owed: the
  // console says so and the operator runs it again).
  awaitable<Result<size_t>> bump_all();

  // Stores `value` under `key` for `ttl` in the background (SET PX): the caller does not wait.
  void store(std::string key, std::vector<std::byte> value, std::chrono::milliseconds ttl);

  // A window lapses this long after its last renewal (in the windows set, and as a lease hold).
  static constexpr uint64_t kWindowHoldMs = 10'000;

  // The breaker is closed: calls go to Redis.
  bool available() const;
  const std::string& prefix() const { return settings_.prefix; }

 private:
  RedisConnection::Deadline deadline() const;        // lookups: redis_timeout
  RedisConnection::Deadline bump_deadline() const;   // bumps: 20x that, at least 100 ms (see bump())
  // A call failed: open the breaker (again, for longer) and say so once.
  void failed(const std::string& what);
  void succeeded();
  // Sends the owed epoch bumps (each hash named anew), when Redis answers again. False while
  // they stay owed.
  awaitable<bool> pay_owed();
  // With Sentinel: after the master moved, every database this worker knows is owed (above).
  void follow_failover();
  // Lookups are confirmed in batches (shared_tier_check.cc): the asks of one turn of the
  // worker's event loop for one database share one round trip, sent after all of them began.
  struct Batch;
  awaitable<void> send_batch(std::shared_ptr<Batch> batch);
  // Reads `versions` (the reply to versions_args(hash, fields)) into `batch`; names the hash
  // first when Redis has none.
  awaitable<bool> read_batch(Batch& batch, const std::string& hash, const std::vector<std::string>& fields,
                             const RedisReply& versions);
  // HMGET hash id e <fields>...: a database's versions hash, the tables' fields.
  static RedisConnection::Args versions_args(const std::string& hash, const std::vector<std::string>& fields);
  // The message that tells the other instances `database`'s epoch moved (and, `window`, that a
  // CALL or DO window is open there); `seq` asks them to acknowledge it (0: not).
  std::string whole_database_message(cache::DatabaseId database, uint64_t seq, bool window) const;
  // A sequence number for a message about to be published (0 without a lease).
  uint64_t next_seq();
  // The messages `seqs` were published, Redis answered at `replied` (`ok`) or not: waits for
  // their acknowledgements (SharedLease::wait_acknowledged) when it did, forgets them when not.
  awaitable<void> acknowledged(std::vector<uint64_t> seqs, std::chrono::steady_clock::time_point replied, bool ok);
  // A hash field's integer: nil is 0 (never bumped); anything else but digits is not ours.
  static bool field_value(const RedisReply& r, uint64_t& out);
  static bool all_ok(const std::vector<RedisResult>& results, size_t expected, std::string& why);

  awaitable<void> store_now(std::string key, std::vector<std::byte> value, std::string px);
  awaitable<void> hold_windows();   // renews this worker's windows until it holds none
  awaitable<void> release_window(cache::DatabaseId database, uint64_t end);


  asio::any_io_executor ex_;
  SharedTierSettings settings_;
  SslCtxPtr redis_tls_;
  RedisConnection redis_;    // lookups and stores: redis_timeout, dropped on a timeout
  RedisConnection writes_;   // bumps, windows, flushes: their own connection, so a lookup's
                             // timeout (which drops its connection) never costs a bump
  QueryCacheCounters& counters_;
  SharedLease* lease_;
  bool open_ = false;                                   // the breaker: calls skip Redis until closed_at_
  std::chrono::steady_clock::time_point closed_at_{};
  std::chrono::steady_clock::time_point closed_since_{};   // its last recovery
  std::chrono::milliseconds backoff_{0};                // the last wait (kept across a flap)
  std::set<cache::DatabaseId> owed_;                    // databases whose epoch bump is owed
  std::set<cache::DatabaseId> known_;                   // databases asked about or bumped here
  uint64_t connects_seen_ = 0;                          // the connection count at the last answer
  uint64_t sentinel_generation_ = 0;                    // the master's generation last seen (Sentinel)
  std::map<cache::DatabaseId, std::shared_ptr<Batch>> forming_;   // asks not sent yet, by database
  std::map<cache::DatabaseId, int> windows_;            // windows this worker holds open, by database
  bool holding_ = false;                                // hold_windows() is running
  const std::string holder_ = random_hex_id();          // this worker's member in the windows sets
};

}  // namespace pgrelay::proxy
