// What every client session shares, owned by the App and outliving all sessions.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

#include "analyzer/n_plus_one.h"
#include "analyzer/query_stats.h"
#include "conf/config.h"
#include "proxy/session/auth_store.h"
#include "proxy/server/cancel_registry.h"
#include "proxy/session/control.h"
#include "proxy/pool/database_gate.h"
#include "proxy/pool/listen_hub.h"
#include "proxy/pool/pool_manager.h"
#include "proxy/base/stats.h"
#include "proxy/net/transport.h"
#include "proxy/net/tls_context.h"
#include "proxy/session/query_cache.h"

namespace pgrelay::proxy {

struct ClientAuthRequest;
struct Services;
class ReplicationListeners;
class StatementEventLog;
class SlowQueryLog;
using ConsoleEntry = awaitable<bool> (*)(ClientTransport& client, Services& services,
                                         const conf::Config& config, const ClientAuthRequest& login);

// Online restart: where the process being replaced sends the clients it hands to the new one
// (the App's takeover channel, proxy/app/takeover_giver.h). Thread-safe.
class HandoffSink {
 public:
  virtual ~HandoffSink() = default;
  // Sends the client socket `fd` (the receiver gets a duplicate) with its encoded HandoffState.
  // `done` is called exactly once, from any thread: true when the new process has adopted the
  // client (the caller then closes its descriptor without shutting the connection down and never
  // reads from it again); false when it refused or the channel failed (the caller serves on).
  virtual void send(int fd, protocol::Buffer state, std::function<void(bool adopted)> done) = 0;
};

// Online restart, in the new process while the old one still serves clients: a CancelRequest
// whose key this process does not know goes to the old process, whose client it may be.
class CancelForwarder {
 public:
  virtual ~CancelForwarder() = default;
  virtual void forward_cancel(const protocol::BackendKeyData& key) = 0;   // any thread
};

// The current Config; a reload swaps it. Sessions take a snapshot when they start.
class ConfigHolder {
 public:
  explicit ConfigHolder(std::shared_ptr<const conf::Config> c) : config_(std::move(c)) {}
  std::shared_ptr<const conf::Config> get() const { std::lock_guard l(mu_); return config_; }
  void set(std::shared_ptr<const conf::Config> c) { std::lock_guard l(mu_); config_ = std::move(c); }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const conf::Config> config_;
};

struct Services {
  explicit Services(std::shared_ptr<const conf::Config> c)
      : query_stats(size_t(c->effective_workers()), size_t(c->max_fingerprints)),
        n_plus_one(uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(c->n_plus_one_log_interval).count())),
        cache(std::make_unique<QueryCache>(c->cache)), config(std::move(c)), pools(&tls) {}
  // Per-fingerprint statistics, a shard per worker (WorkerLocal); sized once, at start.
  analyzer::QueryStatsRegistry query_stats;
  // N+1 patterns detected by the sessions (SHOW N_PLUS_ONE).
  analyzer::NPlusOneRegistry n_plus_one;
  // The query-result cache; sized by [cache] at start, used by the databases that enable it.
  std::unique_ptr<QueryCache> cache;
  ConfigHolder config;
  TlsContexts tls;                        // client- and server-side TLS contexts (before pools: they use it)
  PoolManager pools;
  CancelRegistry cancels;
  AuthStore auth;                         // client authentication: caches, forwarded credentials, counters
  std::atomic<int> clients{0};            // connected clients, all workers (max_client_conn)
  std::atomic<uint64_t> next_client_id{1};
  // Bumped when a transaction that ran DDL through pgrelay ends: server connections prepared at
  // an older one drop their shared prepared statements before their next client uses them, so
  // no client meets a plan the DDL made stale ("cached plan must not change result type").
  std::atomic<uint64_t> schema_generation{0};
  ListenHubs listen_hubs;                 // LISTEN in transaction/statement pooling: a connection per database
  ProxyStats stats;                       // counters that are not per pool (those are in pools)
  DatabaseGate gate;                      // PAUSE / SUSPEND / DISABLE from the admin console
  Control* control = nullptr;             // the App, for the admin console; null without one
  // Set while this process hands its clients to a new one (online restart); null otherwise.
  std::atomic<HandoffSink*> handoff{nullptr};
  // Set while this process takes clients over from an old one (online restart); null otherwise.
  std::atomic<CancelForwarder*> cancel_forward{nullptr};
  // The admin console (proxy/admin), set by the App: serves a login to an admin database, or
  // refuses a DISABLE'd one, and returns true; false lets the login go on. Null: no console.
  ConsoleEntry serve_console = nullptr;
  // statement_event_log, opened by the App at start when configured; null: off.
  std::shared_ptr<StatementEventLog> statement_log;
  // Slow executions: SHOW SLOW and slow_query_log. Made by the App at start; null before.
  std::shared_ptr<SlowQueryLog> slow_queries;
  // The query cache's replication listeners (session/replication_listener.h), made by the App
  // at start when a database sets replication = true; null otherwise.
  std::shared_ptr<ReplicationListeners> replication;
};

}  // namespace pgrelay::proxy
