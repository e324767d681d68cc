// What the admin console and the metrics endpoint may ask of the running server; the App implements it.
//
// Reached through Services::control (set by the App for its whole life, null in tests that run
// pieces without an App). Methods are thread-safe: the console calls them from whichever worker
// its session runs on.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/session/client_info.h"

namespace pgrelay::proxy {

class Control {
 public:
  virtual ~Control() = default;

  // RELOAD: reads the configuration again. An error (file:line: key: ...) keeps the running one.
  virtual Result<void> reload() = 0;

  // SHUTDOWN: a graceful shutdown, as SIGTERM. Returns at once.
  virtual void request_shutdown() = 0;

  // Every client session as plain values (`clients`), and every server connection pipelining's
  // lanes hold (`servers`; the ones sessions hold are in their ClientInfo), each copied on its
  // own worker thread. Completes, on the caller's executor, once every worker has answered (or
  // after a few seconds, when a worker is not running any more).
  virtual awaitable<ConnectionsSnapshot> connections() = 0;

  // Ends the client sessions `which` picks, on their own threads (workers run `which`
  // concurrently: it must be thread-safe). Returns how many it ended; completes as connections().
  virtual awaitable<size_t> terminate_clients(std::function<bool(const ClientInfo&)> which) = 0;

  // The size of one client session object, for SHOW MEM.
  virtual size_t client_session_size() const = 0;

  // Whether the client listeners are accepting (false once shutdown has begun).
  virtual bool accepting() const = 0;

  // CACHE WARM [database] ("" = every database): starts a run of cache warming in the
  // background (app/cache_warmer.h). The statements it replays, or why not (SQLSTATE, message).
  virtual Result<size_t> warm_cache(const std::string& database) = 0;
};

}  // namespace pgrelay::proxy
