// The admin console: virtual databases (pgrelay, pgbouncer) that answer PgBouncer's commands over psql.
//
// ClientSession::login() hands a client to serve_console_or_refuse() before it resolves the
// database. The console speaks the simple query protocol only; every answer is a real result
// set (RowDescription, DataRows, CommandComplete) that psql renders, also with \x. Commands
// (admin_command.h) run in the session's coroutine, on its worker thread; they read shared
// state through Services and act on the server through Services::control (the App).
//
// admin_console.cc: login, the message loop, dispatch. admin_show.cc: SHOW. admin_clients.cc:
// SHOW CLIENTS/SERVERS. admin_actions.cc: PAUSE, RESUME, ..., SET.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "protocol/bytes.h"
#include "protocol/result.h"
#include "proxy/admin/admin_command.h"
#include "proxy/net/asio.h"
#include "proxy/session/client_auth.h"
#include "proxy/session/client_info.h"
#include "proxy/base/result_set.h"
#include "proxy/session/services.h"
#include "proxy/net/transport.h"

namespace pgrelay::proxy {

// Before a client's database is resolved:
//  - an admin console database (admin_databases): authenticates the client as any other (auth_file,
//    database entries' passwords, auth_query on the "*" entry's server, hba rules), refuses users
//    in neither admin_users nor stats_users with FATAL 42501, then serves commands until the
//    client leaves. Returns true.
//  - a database DISABLE'd in the console: FATAL 55000 to the client. Returns true.
//  - anything else: sends nothing and returns false; login goes on.
// Runs on the session's executor and owns `client` until it returns.
awaitable<bool> serve_console_or_refuse(ClientTransport& client, Services& services, const conf::Config& config,
                                        const ClientAuthRequest& login);

// Every client session and server connection (client_info.h), copied on their own threads.
awaitable<ConnectionsSnapshot> snapshot_connections(Services& services);

// One console session; public for the handlers split across admin_*.cc.
class AdminConsole {
 public:
  AdminConsole(ClientTransport& client, Services& services, std::string user, bool admin, uint64_t client_id);

  // The message loop, until the client leaves or breaks the protocol.
  awaitable<void> run();

 private:
  // Runs one command, appending its result (or its error) to `out`. False: an error was sent
  // and the rest of the Query must not run.
  awaitable<bool> execute(const AdminCommand& command, protocol::Buffer& out);

  // --- admin_show.cc / admin_clients.cc ---
  awaitable<Result<ResultSet>> show(const std::string& subject);
  ResultSet show_help() const;
  ResultSet show_pools() const;
  ResultSet show_stats(bool totals, bool averages) const;
  ResultSet show_databases() const;
  ResultSet show_users() const;
  ResultSet show_config() const;
  ResultSet show_lists() const;
  ResultSet show_mem() const;
  ResultSet show_state() const;
  ResultSet show_sizing() const;
  ResultSet show_waits() const;
  ResultSet show_listeners() const;
  // The query analyzer (admin_queries.cc).
  ResultSet show_queries() const;
  ResultSet show_slow() const;
  ResultSet show_n_plus_one() const;
  ResultSet show_cache() const;   // admin_cache.cc
  // CACHE FLUSH: the tag with the answers dropped from memory; with the Redis tier, the shared
  // versions are bumped too (or the error says they were not).
  awaitable<Result<std::string>> cache_flush(const AdminCommand& c);
  ResultSet show_caches() const;   // admin_cache.cc: SHOW CACHES
  ResultSet show_replication() const;   // admin_replication.cc: SHOW REPLICATION
  ResultSet show_replicas() const;   // admin_replicas.cc: SHOW REPLICAS
  Result<std::string> cache_enable(const AdminCommand& c);   // CACHE ENABLE / DISABLE: the tag
  Result<std::string> cache_warm(const AdminCommand& c);     // CACHE WARM: the tag and the statements queued
  void reset_queries();
  awaitable<ResultSet> show_clients();
  awaitable<ResultSet> show_servers();

  // --- admin_actions.cc --- The tag to answer with, or the error.
  awaitable<Result<std::string>> act(const AdminCommand& command);
  Result<void> check_database(const std::string& database) const;   // known to pgrelay
  std::vector<std::shared_ptr<Pool>> pools_of(const std::string& database) const;   // "" = all
  // Polls until no server connection of `database` ("" = all) is in use; false when the
  // console client went away meanwhile.
  awaitable<bool> wait_until_idle(const std::string& database);
  awaitable<bool> wait_close(const std::string& database);
  bool client_gone() const;

  ClientTransport& client_;
  Services& services_;
  const std::string user_;
  const bool admin_;
  const uint64_t client_id_;
};

}  // namespace pgrelay::proxy
