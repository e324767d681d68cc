// The Redis tier's invalidation channel, heard by one worker per process (docs/cache.md, "The
// Redis tier" and "Leases"): every instance publishes its bumps on "<prefix>:inv"
// (SharedTier::bump); this subscribes and applies what other instances published to this
// process's generations, so their writes make this instance's memory entries stale at once.
//
// It also keeps the process's lease (shared_lease.h, cache/lease_book.h): it publishes a ping
// to itself every fifth of the lease length over a second connection, renews the lease when
// the ping comes back, acknowledges every bump it applied (batched, on that connection), and
// passes other instances' pings and acknowledgements to the book, which wakes this process's
// bumps waiting for them. While the channel is down there is no lease: hits are confirmed
// against the versions hash, as without leases. It resubscribes with backoff (250 ms doubling
// to 5 s) and logs each change once.
//
// With Redis Sentinel it also asks the sentinels where the master is every second
// (RedisSentinel::resolve): a failover moves the sentinel's generation, which drops every
// connection of the process to the old master at its next call, this subscription included
// (its next PING), so the channel follows the master within about a second.
//
// Threading: made and run on one worker's executor; destroyed there (or after its loop stopped).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "proxy/net/asio.h"
#include "proxy/net/redis_connection.h"
#include "proxy/net/tls_context.h"
#include "proxy/session/shared_tier.h"

namespace pgrelay::proxy {

class QueryCache;

class SharedChannel {
 public:
  // `schema_generation`: the process's (Services'), bumped when another instance says its DDL
  // may have changed a database's schema, so this one's shared prepared statements go.
  SharedChannel(asio::any_io_executor ex, const SharedTierSettings& settings, SslCtxPtr tls, QueryCache& cache,
                std::atomic<uint64_t>& schema_generation);
  ~SharedChannel();
  SharedChannel(const SharedChannel&) = delete;
  SharedChannel& operator=(const SharedChannel&) = delete;

  // Subscribes, and stays subscribed until destroyed; keeps the lease meanwhile.
  void start();

 private:
  struct State;   // what the running loops and the message handler share; outlives this
  static awaitable<void> run(std::shared_ptr<State> state);
  static awaitable<void> keep_lease(std::shared_ptr<State> state);
  static awaitable<void> send_acks(std::shared_ptr<State> state);
  static awaitable<void> watch_sentinels(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
};

}  // namespace pgrelay::proxy
