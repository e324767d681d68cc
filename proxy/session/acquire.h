// A client's wait for a server connection: the PAUSE gate first, then the pool, timed and visible.
#pragma once

#include <memory>

#include "conf/config.h"
#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/pool/pool.h"
#include "proxy/server/server_connection.h"
#include "proxy/session/services.h"
#include "proxy/base/stats.h"

namespace pgrelay::proxy {

// Pool::acquire() for a client session running on `ex`, behind Services::gate: while the pool's
// database is paused (PAUSE, KILL, SUSPEND) the client waits for RESUME, within the same
// `wait_timeout` (0: forever; 53300 when it runs out). While it waits, `meter` shows the session
// as "waiting" (SHOW CLIENTS); the whole wait is observed in the pool's wait_seconds histogram.
awaitable<Result<std::unique_ptr<ServerConnection>>> acquire_server(Services& services, Pool& pool, SessionMeter& meter,
                                                                    asio::any_io_executor ex,
                                                                    conf::Duration wait_timeout);

}  // namespace pgrelay::proxy
