// The validated, immutable configuration: what pgrelay.toml (plus environment overrides) says.
//
// A Config is built once by load_config() and never changed; a reload builds a new one and
// the proxy swaps a std::shared_ptr<const Config>. Nothing here touches sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/hba.h"
#include "conf/redis_sentinels.h"
#include "conf/redis_url.h"
#include "conf/tls_settings.h"
#include "conf/userlist.h"

namespace pgrelay::conf {

using Duration = std::chrono::milliseconds;

enum class PoolMode { kSession, kTransaction, kStatement };
enum class LogLevel { kDebug, kInfo, kWarning, kError };
// What a transaction/statement-mode client that leaves session state (SET, SET ROLE, temp
// tables, LISTEN, ...) gets: its own server connection until the state is gone, or an error.
enum class SessionStatePolicy { kPin, kReject };

const char* to_string(PoolMode m);
const char* to_string(LogLevel l);
const char* to_string(SessionStatePolicy p);

// Pool settings; [pgrelay] sets the defaults, a [databases.NAME] table may override them.
struct PoolSettings {
  PoolMode pool_mode = PoolMode::kSession;
  int pool_size = 20;                  // server connections per (database, user) pool
  int min_pool_size = 0;
  int max_pool_size = 0;               // overflow ceiling for clients that waited reserve_pool_timeout; 0: pool_size
  int reserve_pool_size = 0;           // extra connections once a client has waited reserve_pool_timeout
  int max_db_connections = 0;          // server connections to this database across all its pools; 0: no limit
  double scale_up_threshold = 0.8;     // active/open at or above this: open a spare connection ahead of demand
  double scale_down_threshold = 0.3;   // active/open below this for scale_down_delay: close idle connections
  Duration scale_down_delay{30'000};

  int effective_max_pool_size() const { return max_pool_size > 0 ? max_pool_size : pool_size; }
  std::string server_reset_query = "DISCARD ALL";
  SessionStatePolicy session_state = SessionStatePolicy::kPin;
};

// Where and as whom a database entry connects.
// The query-result cache (docs/cache.md): [cache] holds the process-wide sizes and each
// database's defaults; [databases.NAME.cache] overrides enabled and default_ttl per database.
// One rule of [[cache.rules]] or [[databases.NAME.cache.rules]]: a table or a fingerprint, and a
// TTL for the reads it matches or `cache = false` (docs/cache.md, Policy).
struct CacheRuleSettings {
  std::string schema;                  // table rules: "" when the name is unqualified
  std::string table;                   // "" in a fingerprint rule; names folded as PostgreSQL folds them
  std::optional<uint64_t> fingerprint; // SHOW QUERIES' fingerprint
  Duration ttl{0};                     // 0: none (cache = false)
  bool cache = true;

  bool operator==(const CacheRuleSettings&) const = default;
};

// [databases.NAME.cache]'s logical replication listener (docs/cache.md, "Writes that bypass
// pgrelay"): commits made on the server without pgrelay invalidate the cache too.
struct ReplicationSettings {
  bool enabled = false;                // replication = true
  std::string publication;             // "": "pgrelay", made FOR ALL TABLES when missing
  std::string slot;                    // "": pgrelay_<pid>_<n> when temporary, pgrelay_<database> when persistent
  bool slot_persistent = false;        // kept when pgrelay stops (and resumed from on restart)

  bool operator==(const ReplicationSettings&) const = default;
};

struct CacheSettings {
  bool enabled = false;                // off unless an operator opts in
  Duration default_ttl{60'000};        // an answer is never older than this (writes that bypass pgrelay)
  uint32_t memory_budget = 64u << 20;  // all entries together ([cache] only)
  uint32_t max_entry_size = 1u << 20;  // one answer's messages ([cache] only)
  uint32_t compress_threshold = 1024;  // answers larger than this are stored LZ4-compressed ([cache] only)
  // [cache]'s rules apply to every database; a database's own are added after them.
  std::vector<CacheRuleSettings> rules;
  // The Redis tier ([cache] only; docs/cache.md). redis_url, else the environment's REDIS_URL.
  std::optional<RedisEndpoint> redis;  // nullopt: no Redis tier
  Duration redis_timeout{5};           // a Redis round trip longer than this is a miss (and a reconnect)
  std::string redis_key_prefix = "pgrelay";   // every key's namespace: one per pgrelay cluster
  Duration redis_lease{300};           // memory hits served without a Redis round trip this long per renewal
  // Redis Sentinel ([cache] only): the primary's address comes from these sentinels, asked in
  // order for redis_master_name; redis_url (or REDIS_URL), when set, still gives the scheme
  // (redis:// or rediss://), user, password and db of the data connections, not their address.
  std::vector<SentinelAddress> redis_sentinels;   // empty: no Sentinel, redis_url's address
  std::string redis_master_name;                  // required with redis_sentinels
  std::string redis_sentinel_password;            // AUTH to the sentinels ("" = none)
  // Warming ([cache] only; docs/cache.md): the hottest statements per database, replayed by a
  // starting instance or CACHE WARM at warm_rate statements a second; saved to Redis (with the
  // tier) and to warm_file ("" = none) every warm_save_interval and at shutdown.
  uint32_t warm_statements = 1000;     // per database; 0: no recording, no warming
  uint32_t warm_rate = 500;            // statements replayed per second (the default list in 2 s)
  std::string warm_file;
  bool warm_on_start = true;
  Duration warm_save_interval{30'000};
  ReplicationSettings replication;     // per database only

  bool operator==(const CacheSettings&) const = default;
};

// A database's read replicas (docs/replicas.md): where they are, whether reads go to them, and
// how far behind one may be and still take reads.
struct ReplicaEndpoint {
  std::string host;                    // host name, IP address, or a directory (Unix socket)
  int port = 5432;
  bool operator==(const ReplicaEndpoint&) const = default;
};

struct ReplicaSettings {
  std::vector<ReplicaEndpoint> replicas;   // the entry's dbname, user and password apply to each
  bool read_routing = false;               // off unless an operator opts in (per user: [users.NAME])
  // max_replica_lag: a size ("16MB": WAL bytes behind the primary) or a duration ("2s": how long
  // ago the primary was where the replica's replay is now). Exactly one of them is non-zero.
  uint64_t max_lag_bytes = 16u << 20;
  Duration max_lag_time{0};
  bool primary_reads = false;              // the primary takes reads too, not only when no replica qualifies
  Duration check_interval{250};            // replica_check_interval: how often lag and health are polled

  bool operator==(const ReplicaSettings&) const = default;
};

// [users.NAME]: what one client user changes about every database it uses.
struct UserEntry {
  std::optional<bool> read_routing;        // over the database's read_routing when set
  bool operator==(const UserEntry&) const = default;
};

struct DatabaseEntry {
  std::string name;                    // the name clients use; "*" is the fallback entry
  std::string host = "127.0.0.1";      // host name, IP address, or a directory (Unix socket)
  int port = 5432;
  // A multi-host primary (host = "a,b", or postgresql://a:5432,b:5433): every host in order, the
  // first also in host/port; pgrelay sends primary traffic to the one not in recovery
  // (docs/replicas.md). Empty for one host.
  std::vector<ReplicaEndpoint> primary_hosts;
  std::string dbname;                  // server database; empty: the name the client asked for
  std::string user;                    // forced server user; empty: the client's user
  std::string password;                // for server authentication; may be empty
  ServerTlsMode server_tls_sslmode = ServerTlsMode::kDisable;   // [pgrelay]'s unless the table sets it
  PoolSettings pool;
  CacheSettings cache;                 // [cache]'s, with this entry's [databases.NAME.cache] over it
  ReplicaSettings replicas;            // replicas, read_routing, max_replica_lag, ... (replica_loader.h)

  bool operator==(const DatabaseEntry&) const = default;
};

// Reads a role's secret for auth_query; $1 is the user name. pg_shadow lists only roles that can
// log in; an expired rolvaliduntil gives no row, so the client fails as an unknown user would.
inline constexpr const char* kDefaultAuthQuery =
    "SELECT usename, passwd FROM pg_shadow WHERE usename = $1 AND (valuntil IS NULL OR valuntil > now())";

// TCP keepalive and the user timeout, for every client and server socket over TCP (PgBouncer's
// tcp_* keys): a peer that vanished without closing (a host powered off, a network partition) is
// found by the kernel instead of holding its connection forever. 0 leaves the system's default
// (net.ipv4.tcp_keepalive_time and friends: 2 hours idle before the first probe).
struct TcpSettings {
  bool keepalive = true;       // SO_KEEPALIVE
  Duration keepidle{0};        // TCP_KEEPIDLE: idle this long before the first probe (whole seconds)
  Duration keepintvl{0};       // TCP_KEEPINTVL: between probes (whole seconds)
  int keepcnt = 0;             // TCP_KEEPCNT: unanswered probes before the connection is dropped
  Duration user_timeout{0};    // TCP_USER_TIMEOUT: sent data unacknowledged this long drops it

  bool operator==(const TcpSettings&) const = default;
};

struct Config {
  std::string source;                  // the file it came from, or "" when built from defaults/env

  // [pgrelay]
  std::string listen_addr = "127.0.0.1";
  int listen_port = 6432;
  // Where the Unix-domain socket .s.PGSQL.<listen_port> goes ("psql -h DIR -p PORT", [[hba]] type
  // "local"); "" = no Unix socket. As PgBouncer's unix_socket_dir.
  std::string unix_socket_dir = "/tmp";
  // Online restart (pgrelay --takeover): the Unix-domain socket a new process connects to, to
  // take over the listening sockets and the idle clients. "": .s.PGRELAY.<listen_port> in
  // unix_socket_dir (no online restart when that is "" too).
  std::string takeover_socket;
  std::string effective_takeover_socket() const;
  int workers = 0;                     // 0: half the CPU cores, at least one
  // After running handlers, a worker keeps polling its sockets this long (yielding the core to
  // any other runnable thread between polls) before it sleeps in epoll_wait. 0: never polls.
  int busy_poll_us = 0;
  LogLevel log_level = LogLevel::kInfo;
  int max_client_conn = 1000;
  int max_user_connections = 0;        // server connections per server user across all pools; 0: no limit
  Duration client_login_timeout{60'000};
  Duration server_connect_timeout{15'000};
  Duration server_idle_timeout{600'000};
  Duration query_wait_timeout{120'000};
  Duration shutdown_timeout{30'000};
  Duration server_lifetime{3'600'000};      // 0: no limit
  Duration reserve_pool_timeout{5'000};
  Duration server_check_delay{30'000};      // idle longer than this: server_check_query before reuse
  std::string server_check_query = "select 1";   // "" = no check
  Duration server_login_retry{5'000};       // clients wait out an unreachable server this long; 0: fail at once
  Duration client_idle_timeout{0};          // 0: off
  Duration idle_transaction_timeout{0};     // 0: off
  Duration query_timeout{0};                // 0: off
  uint32_t max_message_size = 256u << 20;
  uint32_t max_startup_packet_size = 10u << 10;
  int max_prepared_statements = 200;   // per server connection, transaction/statement mode; 0: no tracking
  TcpSettings tcp;                     // tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt, tcp_user_timeout
  // Pipelining (docs/pipelining.md): transaction and statement pooling carry lone autocommit
  // reads of clients with the same settings back to back on a few shared server connections.
  bool pipelining = true;
  int pipeline_connections = 4;        // per worker and settings: connections a lane may hold
  int pipeline_depth = 16;             // statements queued on one of them at most
  Duration pipeline_max_wait{10};      // one whose head statement runs longer takes no new ones
  // Every statement's events (start, end, rows, SQLSTATE, timing) as JSON lines appended to this
  // file, for debugging and tests; "" = off. Read at start; a reload does not reopen it.
  std::string statement_event_log;

  // The query analyzer (docs/analyzer.md): statistics per statement fingerprint, the slow-query log.
  bool query_stats = true;              // fingerprint every statement and keep statistics per fingerprint
  int max_fingerprints = 5000;          // (fingerprint, database, user) entries kept, by total time
  int query_text_length = 1024;         // bytes of a fingerprint's normalized text kept for display
  Duration slow_query_threshold{1'000}; // executions at least this long are slow; 0: none
  // Where slow executions go as JSON lines: "" = nowhere (SHOW SLOW still lists the recent ones),
  // "stderr", or a file appended to. Read at start.
  std::string slow_query_log;
  bool log_parameters = false;          // a slow execution's parameter values in its line (may hold personal data)
  int slow_query_log_rate = 100;        // lines per second at most; the others are counted as dropped
  int metrics_top_fingerprints = 20;    // fingerprints with their own /metrics series, by total time
  // N+1 detection: a read fingerprint run this many times with different values in one unit of
  // work (a transaction, or a burst with gaps under n_plus_one_window); 0: off.
  int n_plus_one_threshold = 5;
  Duration n_plus_one_window{100};
  Duration n_plus_one_log_interval{60'000};   // a pattern is logged at most once per interval
  PoolSettings pool;                   // defaults for every database entry
  CacheSettings cache;                 // [cache]: sizes, and defaults for every database entry

  // Client authentication: [pgrelay] auth_* keys and the [[hba]] rules (see conf/hba.h).
  AuthMethod auth_type = AuthMethod::kScramSha256;   // the method when there are no [[hba]] rules
  std::string auth_file;               // as resolved against the config file's directory; "" = none
  Userlist auth_users;                 // its contents, read with the config (and again on reload)
  std::string auth_user;               // "" = no auth_query
  std::string auth_query = kDefaultAuthQuery;
  Duration auth_cache_ttl{30'000};     // auth_query answers are reused this long; 0 = not at all
  std::vector<std::string> admin_users;
  std::vector<std::string> stats_users;
  std::vector<HbaRule> hba;            // first match wins; empty = auth_type for everyone

  // The admin console and the metrics endpoint (docs/admin.md, docs/metrics.md).
  std::vector<std::string> admin_databases = {"pgrelay", "pgbouncer"};   // served by the console
  std::string metrics_listen = "127.0.0.1:9930";   // as configured; "" = no metrics endpoint
  std::string metrics_addr = "127.0.0.1";          // metrics_listen's address (an IP literal)...
  int metrics_port = 9930;                         // ...and port; 0 when metrics_listen is ""

  // TLS: client_tls_* and server_tls_* (see conf/tls_settings.h).
  ClientTlsSettings client_tls;
  ServerTlsSettings server_tls;

  // [databases.NAME], by client-visible name; "*" is the fallback.
  std::map<std::string, DatabaseEntry> databases;
  // [users.NAME], by client user name.
  std::map<std::string, UserEntry> users;

  // Whether `user`'s reads of `entry` may go to its replicas: read_routing of [users.NAME] when
  // set, else the entry's; never without replicas.
  bool read_routing(const DatabaseEntry& entry, const std::string& user) const;

  // The entry for a database name the client asked for: exact match, else "*", else nullptr.
  const DatabaseEntry* find_database(const std::string& name) const;
  int effective_workers() const;       // workers, or the number of cores when 0
  // Gates for the admin console: admin_users may do everything, stats_users (and admins) read.
  bool is_admin(std::string_view user) const;
  bool is_stats(std::string_view user) const;
  // Whether clients asking for `database` get the admin console.
  bool is_admin_database(std::string_view database) const;
};

}  // namespace pgrelay::conf
