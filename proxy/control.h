// What the admin console and the metrics endpoint may ask of the running server; the App implements it.
//
// Reached through Services::control (set by the App for its whole life, null in tests that run
// pieces without an App). Methods are thread-safe: the console calls them from whichever worker
// its session runs on.
#pragma once

#include <functional>

#include "protocol/result.h"
#include "proxy/asio.h"

namespace pgrelay::proxy {

class ClientSession;

class Control {
 public:
  virtual ~Control() = default;

  // RELOAD: reads the configuration again. An error (file:line: key: ...) keeps the running one.
  virtual Result<void> reload() = 0;

  // SHUTDOWN: a graceful shutdown, as SIGTERM. Returns at once.
  virtual void request_shutdown() = 0;

  // Runs `visit` for every client session on the session's own worker thread, so it may read
  // and act on the session (terminate(), info()). Workers run it concurrently: `visit` must be
  // thread-safe. Completes, on the caller's executor, once every worker has run it (or after
  // a few seconds, when a worker is not running any more).
  virtual awaitable<void> for_each_session(std::function<void(ClientSession&)> visit) = 0;

  // Whether the client listeners are accepting (false once shutdown has begun).
  virtual bool accepting() const = 0;
};

}  // namespace pgrelay::proxy
