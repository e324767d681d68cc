// The admin console's commands that change things: PAUSE, RESUME, SUSPEND, DISABLE, ENABLE,
// RECONNECT, KILL, KILL_CLIENT, WAIT_CLOSE, RELOAD, SHUTDOWN and SET.
#include <atomic>
#include <functional>
#include <cstdlib>

#include "conf/runtime_settings.h"
#include "protocol/sqlstate.h"
#include "proxy/admin/admin_console.h"
#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(50);
constexpr const char* kNotInPrerequisiteState = "55000";
constexpr const char* kConfigFileError = "F0000";

awaitable<void> sleep_for(std::chrono::milliseconds d) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, d);
  error_code ec;
  co_await timer.async_wait(ec_awaitable(ec));
}

bool is_auth_query_pool(const std::string& database) { return database.ends_with(" (auth_query)"); }

}  // namespace

Result<void> AdminConsole::check_database(const std::string& database) const {
  auto config = services_.config.get();
  if (config->databases.count(database) && database != "*") return {};
  for (const auto& pool : services_.pools.pools())
    if (pool->key().database == database) return {};
  return Error{sqlstate::kSyntaxError, "no such database: \"" + database + "\" (SHOW DATABASES lists them)"};
}

std::vector<std::shared_ptr<Pool>> AdminConsole::pools_of(const std::string& database) const {
  std::vector<std::shared_ptr<Pool>> out;
  for (const auto& pool : services_.pools.pools())
    if (database.empty() ? !is_auth_query_pool(pool->key().database) : pool->key().database == database)
      out.push_back(pool);
  return out;
}

awaitable<bool> AdminConsole::wait_until_idle(const std::string& database) {
  for (;;) {
    int busy = 0;
    for (const auto& pool : pools_of(database)) {
      const auto g = pool->gauges();
      busy += g.active + g.login;
    }
    if (busy == 0) co_return true;
    if (client_gone()) co_return false;
    co_await sleep_for(kPoll);
  }
}

awaitable<bool> AdminConsole::wait_close(const std::string& database) {
  for (;;) {
    auto snap = co_await snapshot_connections(services_);
    int left = 0;
    for (const ServerInfo& s : snap.servers)
      if (s.close_needed && (database.empty() || s.database == database)) ++left;
    for (const auto& pool : services_.pools.retired_pools())
      if (database.empty() || pool->key().database == database) left += pool->gauges().open;
    if (left == 0) co_return true;
    if (client_gone()) co_return false;
    const auto pause = kPoll * 2;
    co_await sleep_for(pause);
  }
}

awaitable<Result<std::string>> AdminConsole::act(const AdminCommand& c) {
  using V = AdminCommand::Verb;
  const std::string& db = c.argument;
  const std::string tag = c.tag();
  const bool names_database = c.verb != V::kKillClient && c.verb != V::kSet && c.verb != V::kCacheFlush &&
                              c.verb != V::kCacheEnable && c.verb != V::kCacheDisable && !db.empty();
  if (names_database) {
    auto known = check_database(db);
    if (!known.ok()) co_return known.error();
  }
  switch (c.verb) {
    case V::kPause: {
      // New requests wait at the gate; busy connections finish their transactions, then every
      // server connection of the database is closed (PgBouncer's PAUSE).
      services_.gate.pause(db);
      const bool idle = co_await wait_until_idle(db);
      if (!idle) co_return Error{"57014", "PAUSE: the console client went away before the pause completed"};
      for (const auto& pool : pools_of(db)) pool->reconnect("PAUSE");
      co_return tag;
    }
    case V::kSuspend: {
      services_.gate.suspend();
      const std::string every;   // named: no temporaries in a co_await'ed call (GCC 12)
      const bool idle = co_await wait_until_idle(every);
      if (!idle) co_return Error{"57014", "SUSPEND: the console client went away before it completed"};
      co_return tag;
    }
    case V::kResume:
      if (!services_.gate.resume(db)) {
        co_return Error{kNotInPrerequisiteState,
                        db.empty() ? std::string("nothing is paused") : "database \"" + db + "\" is not paused"};
      }
      co_return tag;
    case V::kDisable:
      services_.gate.disable(db);
      co_return tag;
    case V::kEnable:
      if (!services_.gate.enable(db)) co_return Error{kNotInPrerequisiteState, "database \"" + db + "\" is not disabled"};
      co_return tag;
    case V::kReconnect:
      for (const auto& pool : pools_of(db)) pool->reconnect("RECONNECT");
      co_return tag;
    case V::kKill: {
      // New clients of the database wait for RESUME, as PgBouncer's KILL.
      services_.gate.pause(db);
      if (services_.control) {
        // A named predicate: GCC 12 mishandles temporaries in a co_await'ed call's arguments.
        std::function<bool(const ClientInfo&)> which = [db](const ClientInfo& c) { return c.database == db; };
        co_await services_.control->terminate_clients(which);
      }
      for (const auto& pool : pools_of(db)) pool->reconnect("KILL");
      co_return tag;
    }
    case V::kKillClient: {
      const uint64_t id = std::strtoull(db.c_str(), nullptr, 10);
      size_t found = 0;
      if (services_.control) {
        std::function<bool(const ClientInfo&)> which = [id](const ClientInfo& c) { return c.id == id; };
        found = co_await services_.control->terminate_clients(which);
      }
      if (found == 0) co_return Error{sqlstate::kSyntaxError, "no such client: " + db + " (SHOW CLIENTS' ptr column)"};
      co_return tag;
    }
    case V::kWaitClose: {
      const bool closed = co_await wait_close(db);
      if (!closed) co_return Error{"57014", "WAIT_CLOSE: the console client went away"};
      co_return tag;
    }
    case V::kReload: {
      if (!services_.control) co_return Error{sqlstate::kFeatureNotSupported, "RELOAD needs a running server"};
      auto reloaded = services_.control->reload();
      if (!reloaded.ok()) {
        co_return Error{kConfigFileError, "RELOAD failed, the running configuration is kept: " + reloaded.error().message};
      }
      co_return tag;
    }
    case V::kShutdown:
      if (!services_.control) co_return Error{sqlstate::kFeatureNotSupported, "SHUTDOWN needs a running server"};
      services_.control->request_shutdown();
      co_return tag;
    case V::kSet: {
      auto next = conf::apply_setting(*services_.config.get(), c.subject, c.argument);
      if (!next.ok()) co_return next.error();
      set_log_level(next->log_level);
      services_.config.set(std::make_shared<const conf::Config>(std::move(*next)));
      co_return tag;
    }
    case V::kResetQueries:
      reset_queries();
      co_return tag;
    case V::kCacheFlush:
      co_return co_await cache_flush(c);
    case V::kCacheEnable:
    case V::kCacheDisable:
      co_return cache_enable(c);
    case V::kCacheWarm:
      co_return cache_warm(c);
    case V::kShow:
      break;
  }
  co_return Error{sqlstate::kInternalError, "unhandled admin command " + tag};
}

}  // namespace pgrelay::proxy
