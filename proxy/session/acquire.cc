// A client's wait for a server connection: the PAUSE gate, then the pool.
#include "proxy/session/acquire.h"

#include <algorithm>

#include "protocol/sqlstate.h"

namespace pgrelay::proxy {

awaitable<Result<std::unique_ptr<ServerConnection>>> acquire_server(Services& services, Pool& pool, SessionMeter& meter,
                                                                    asio::any_io_executor ex,
                                                                    conf::Duration wait_timeout) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto waiting = meter.waiting();
  const std::string& database = pool.key().database;
  if (services.gate.paused(database)) {
    const auto deadline = wait_timeout.count() > 0 ? start + wait_timeout : Clock::time_point::max();
    const bool open = co_await services.gate.wait_open(database, pool.key().user, ex, deadline);
    if (!open) {
      pool.counters().wait_seconds.observe(Clock::now() - start);
      co_return Error{sqlstate::kTooManyConnections,
                      "query_wait_timeout: database \"" + database + "\" stayed paused (PAUSE, KILL or SUSPEND in "
                      "the admin console) for " + std::to_string(wait_timeout.count()) + "ms"};
    }
    if (wait_timeout.count() > 0) {
      // What is left of the wait, at least a moment: the client asked for one deadline.
      const auto left = std::chrono::duration_cast<conf::Duration>(deadline - Clock::now());
      wait_timeout = std::max(left, conf::Duration(1));
    }
  }
  auto conn = co_await pool.acquire(ex, wait_timeout);
  pool.counters().wait_seconds.observe(Clock::now() - start);
  co_return conn;
}

}  // namespace pgrelay::proxy
