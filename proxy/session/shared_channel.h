// The Redis tier's invalidation channel, heard by one worker per process (docs/cache.md, "The
// Redis tier"): every instance publishes its bumps on "<prefix>:inv" (SharedTier::bump); this
// subscribes and applies what other instances published to this process's generations, so
// their writes make this instance's memory entries stale at once, instead of at each entry's
// next confirmation against Redis. An early warning, not the guarantee: hits are confirmed
// against the versions hash anyway, so a message lost while the channel is down costs memory
// and a round trip, never a stale answer. While down, it resubscribes with backoff (250 ms
// doubling to 5 s) and logs each change once.
//
// Threading: made and run on one worker's executor; destroyed there (or after its loop stopped).
#pragma once

#include <chrono>
#include <memory>

#include "proxy/net/asio.h"
#include "proxy/net/redis_connection.h"
#include "proxy/net/tls_context.h"
#include "proxy/session/shared_tier.h"

namespace pgrelay::proxy {

class QueryCache;

class SharedChannel {
 public:
  SharedChannel(asio::any_io_executor ex, const SharedTierSettings& settings, SslCtxPtr tls, QueryCache& cache);
  ~SharedChannel();
  SharedChannel(const SharedChannel&) = delete;
  SharedChannel& operator=(const SharedChannel&) = delete;

  // Subscribes, and stays subscribed until destroyed.
  void start();

 private:
  struct State;   // what the running loop and the message handler share; outlives this
  static awaitable<void> run(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
};

}  // namespace pgrelay::proxy
