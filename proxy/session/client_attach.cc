// A server connection made to carry the client's session: taken from the pool with the
// client's settings applied (attach_server), and set again after a RESET (resync_server).
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/session/acquire.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {

awaitable<bool> ClientSession::attach_server(int replica) {
  auto ex = co_await asio::this_coro::executor;
  const auto asked = EventClock::now();
  Pool& pool = replica >= 0 ? *route_->pools[size_t(replica)] : *pool_;
  auto conn = co_await acquire_server(services_, pool, meter_, ex, config_->query_wait_timeout);
  if (!conn.ok() && replica >= 0) {
    // The replica went away since its last check: the read goes to the primary, unharmed.
    route_->set->replica(size_t(replica)).set_last_error(conn.error().message);
    log_info("client ", id_, " ", peer_, ": replica ", pool.name(), " gave no connection (", conn.error().message,
             "): reading from the primary");
    replica = -1;
    conn = co_await acquire_server(services_, *pool_, meter_, ex, config_->query_wait_timeout);
  }
  exchange_->last_wait = EventClock::now() - asked;
  if (!conn.ok()) {
    co_await send_error(fatal(conn.error().sqlstate, conn.error().message));
    co_return false;
  }
  server_ = std::move(*conn);
  if (route_) replica_attached(replica);
  auto prepared = co_await prepare_attached_server();
  if (prepared.ok()) {
    cancel_slot().set(server_->shared_target(), server_->backend_key());
    co_return true;
  }
  server_->broken = true;   // what it carries now is unknown
  if (replica >= 0) {
    // The replica died (or refused the client's settings) after it gave the connection, before
    // anything reached the client: the read goes to the primary, as when it gives none.
    route_->set->replica(size_t(replica)).set_last_error(prepared.error().message);
    log_info("client ", id_, " ", peer_, ": replica ", pool.name(), " failed while taking the session (",
             prepared.error().message, "): reading from the primary");
    replica_detached();
    pool.release(std::move(server_));
    const bool attached = co_await attach_server(-1);
    co_return attached;
  }
  co_await send_error(fatal(prepared.error().sqlstate, prepared.error().message));
  co_return false;
}

awaitable<bool> ClientSession::replace_lost_server(uint32_t from) {
  if (pump_running()) co_await stop_pump();
  if (!server_) co_return false;   // (the pump moved a read to the primary and could not attach one: said so)
  if (!client_.is_open() || terminating_) co_return false;   // the pump told the client, and closed it
  // Nothing of the client's is on it: between transactions, nothing sent, no session state the
  // client made there, and no DO or CALL whose settings are still to be read back.
  const bool nothing_of_the_client =
      mode_ != conf::PoolMode::kSession && server_->tx_status == 'I' && server_->in_flight == 0 &&
      !server_->unsynced && !session_state_->pinned() && !exchange_->audit_settings && !exchange_->retrying;
  if (!nothing_of_the_client) {
    co_await send_error(fatal(sqlstate::kConnectionFailure, "server connection lost"));
    co_return false;
  }
  log_info("client ", id_, " ", peer_, ": server connection ", server_->target().describe(),
           " lost between transactions: the next request takes another");
  co_await release_server();   // broken: the pool closes it
  const int replica = route_ ? choose_replica(from) : -1;
  const bool attached = co_await attach_server(replica);
  co_return attached;
}

awaitable<Result<void>> ClientSession::prepare_attached_server() {
  const uint64_t generation = services_.schema_generation.load();
  if (server_->statements_generation != generation) {
    // DDL ran through pgrelay since this connection prepared its shared statements: their plans
    // may be stale, so they go (a no-op when it has none). Costs a round trip after DDL only.
    if (routing_ && server_->statements.size() > 0) {
      auto dropped = co_await server_->run("DEALLOCATE ALL");
      if (!dropped.ok()) co_return dropped;
    }
    server_->statements.clear();
    server_->statements_generation = generation;
  }
  if (!client_params_ || server_->carried_params != client_params_ ||
      server_->carried_sets != session_state_->sets()) {
    // Another client (or none) used it last: make it carry this client's settings.
    // At login there is no client view yet: the startup settings are all it wants.
    std::string sql = settings_sync_sql();
    if (!sql.empty()) {
      auto applied = co_await server_->run(sql);
      if (!applied.ok()) co_return applied;
      // The server reports the values in its own spelling ("UTF8" for "utf8"); keep that, so
      // the next attach compares like with like.
      if (client_params_)
        for (const auto& [name, value] : server_->parameters())
          if (client_params_->count(name)) set_client_param(name, value);
    }
    note_server_carries_settings();
  }
  co_return Result<void>{};
}

awaitable<bool> ClientSession::resync_server() {
  co_await stop_pump();
  if (!server_) co_return false;   // the pump moved a read to the primary and could not attach one
  std::string sql = settings_sync_sql();
  server_stale_ = false;
  if (sql.empty()) co_return true;
  auto applied = co_await server_->run(sql);
  if (!applied.ok()) {
    server_->broken = true;
    co_await send_error(fatal(applied.error().sqlstate, "restoring the session's settings after RESET failed: " +
                                                            applied.error().message));
    co_return false;
  }
  note_server_carries_settings();
  co_return true;
}

std::string ClientSession::settings_sync_sql() {
  if (client_params_)
    return sync_statements(wanted_settings(*startup_settings_, *client_params_, session_state_->sets().get()),
                           server_->parameters(), server_->applied_settings);
  // At login there is no client view yet: the client wants what a fresh connection of the pool
  // reports, with its startup settings over that; never what the connection's last client SET
  // (its TimeZone would become this client's greeting and view).
  static const ParamMap kNone;
  const std::shared_ptr<const ParamMap> fresh = pool_->greeting_for({});
  WantedSettings wanted = wanted_settings({}, fresh ? *fresh : kNone);
  for (const auto& s : *startup_settings_) wanted[s.name] = {s.value};
  return sync_statements(wanted, server_->parameters(), server_->applied_settings);
}

void ClientSession::note_server_carries_settings() {
  // A RESET left it at server defaults the client does not want: it carries nobody's view.
  server_->carried_params = server_stale_ ? nullptr : client_params_;
  server_->carried_sets = session_state_->sets();
}

}  // namespace pgrelay::proxy
