// One connection to Redis for one worker: commands and pipelines with a deadline each, on the
// worker's own event loop (hiredis only encodes commands and parses replies).
//
// The connection opens on first use (TCP, Unix socket or TLS per the URL; AUTH and SELECT go
// out pipelined ahead of the first commands) and again after any failure. Callers' commands are
// written in the order they call and their replies matched in that order, so any number of the
// worker's coroutines may call at once: their commands share writes (pipelining).
//
// Deadlines: every call returns by its deadline. A call that times out on an open connection
// drops the connection, because its reply may still come and must never be taken for the reply
// of a later command; the other calls waiting on it get kConnectionLost and the next call
// reconnects. A call that times out while the connection is still being opened leaves it
// opening (bounded by connect_timeout) and its commands are never sent. Nothing retries a
// command: the caller decides (a cache lookup is a miss).
//
// With Sentinel (RedisOptions::sentinel, redis_sentinel.h) each connection is opened to the master
// the sentinels name and checked with ROLE; a READONLY reply or a failover drops it.
//
// Threading: one executor (the worker's). Every member, and the destruction, on it; destroy only
// when no call is in progress (the background reader and writer hold what they use and end
// when the socket closes).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "conf/redis_url.h"
#include "conf/tls_settings.h"
#include "proxy/net/asio.h"
#include "proxy/net/redis_reply.h"
#include "proxy/net/tls_context.h"

namespace pgrelay::proxy {

class RedisSentinel;

struct RedisOptions {
  conf::RedisEndpoint endpoint;
  // For rediss://: the context (server_tls_*'s: CA file, client certificate) and how the
  // peer is checked (verify-full: the chain and the host name).
  SslCtxPtr tls_ctx;
  conf::ServerTlsMode tls_mode = conf::ServerTlsMode::kVerifyFull;
  std::chrono::milliseconds connect_timeout{1000};   // connect, TLS handshake
  // With Redis Sentinel: where the master is (the endpoint's host and port are not used), asked
  // before each connection is opened; ROLE is checked behind AUTH and SELECT, a READONLY reply
  // or a failover drops the connection (redis_sentinel.h). Null: the endpoint's address.
  std::shared_ptr<RedisSentinel> sentinel;
  // A subscriber's connection (after SUBSCRIBE): the published messages Redis pushes
  // (["message", channel, payload]) go here instead of to a call. Null: none expected, and one
  // that comes is a protocol error.
  std::function<void(const RedisReply& message)> on_message;
};

// Counters of one connection (plain: read on its worker's thread, or summed by it).
struct RedisStats {
  uint64_t connects = 0;          // connections opened (socket up)
  uint64_t connect_failures = 0;  // could not connect, TLS failed, connect_timeout passed
  uint64_t login_failures = 0;    // AUTH or SELECT refused
  uint64_t commands = 0;          // commands sent (a pipeline counts each)
  uint64_t timeouts = 0;          // calls past their deadline
  uint64_t disconnects = 0;       // open connections dropped (timeout, error, closed by Redis)
};

class RedisConnection {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  using Args = std::vector<std::string_view>;   // one command: its name and arguments, binary-safe

  RedisConnection(asio::any_io_executor ex, RedisOptions options);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // One command. The arguments are copied (encoded) before the first suspension.
  awaitable<RedisResult> command(Args args, Deadline deadline);
  // Several commands in one write; one result per command, in order. When the connection
  // fails part-way, the commands answered so far keep their replies.
  awaitable<std::vector<RedisResult>> pipeline(std::vector<Args> commands, Deadline deadline);

  // A connection is open and logged in, or being opened.
  bool active() const;
  // Drops the connection; calls in progress get kConnectionLost.
  void close();
  const RedisStats& stats() const { return *stats_; }
  const conf::RedisEndpoint& endpoint() const { return options_->endpoint; }

 private:
  struct Call;
  struct Link;

  std::shared_ptr<Link> link();   // the current one, or a new one being opened

  asio::any_io_executor ex_;
  std::shared_ptr<const RedisOptions> options_;
  std::shared_ptr<RedisStats> stats_;   // shared with the links' background coroutines
  std::shared_ptr<Link> link_;
};

// A command from its words: `co_await redis.command(redis_args("GET", key), deadline)`. GCC 12
// rejects a braced list of strings inside a co_await expression ("array used as initializer").
template <class... Words>
RedisConnection::Args redis_args(const Words&... words) {
  return RedisConnection::Args{std::string_view(words)...};
}

}  // namespace pgrelay::proxy
