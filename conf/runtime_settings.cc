// SHOW CONFIG and SET for the admin console: every [pgrelay] key (and cache.redis_lease), read and (some) written at run time.
#include "conf/runtime_settings.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "conf/loader.h"

namespace pgrelay::conf {
namespace {

struct Key {
  const char* name;
  bool changeable;
  std::function<std::string(const Config&)> show;
  std::function<void(Config& to, const Config& from)> copy;
};

std::string number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Shorthands for the table: a field of Config, or of Config::pool.
#define PGRELAY_KEY(name, changeable, show_expr)                                   \
  Key {                                                                            \
    #name, changeable, [](const Config& c) -> std::string { return show_expr; },   \
        [](Config& to, const Config& from) { to.name = from.name; }                \
  }
#define PGRELAY_POOL_KEY(name, show_expr)                                          \
  Key {                                                                            \
    #name, false, [](const Config& c) -> std::string { return show_expr; },        \
        [](Config& to, const Config& from) { to.pool.name = from.pool.name; }      \
  }

// client_tls_* / server_tls_*: fields of Config::client_tls or ::server_tls. Never SET: a new
// certificate or mode takes a RELOAD, which rebuilds the TLS contexts.
#define PGRELAY_TLS_KEY(name, side, field, show_expr)                              \
  Key {                                                                            \
    #name, false, [](const Config& c) -> std::string { return show_expr; },        \
        [](Config& to, const Config& from) { to.side.field = from.side.field; }    \
  }

// tcp_*: fields of Config::tcp. SET applies to connections made after it.
#define PGRELAY_TCP_KEY(name, field, show_expr)                                    \
  Key {                                                                            \
    #name, true, [](const Config& c) -> std::string { return show_expr; },         \
        [](Config& to, const Config& from) { to.tcp.field = from.tcp.field; }      \
  }

// [cache]'s Redis Sentinel keys, shown as "cache.<name>" (never SET: the tier's connections are
// made at start).
#define PGRELAY_CACHE_KEY(name, show_expr)                                         \
  Key {                                                                            \
    "cache." #name, false, [](const Config& c) -> std::string { return show_expr; }, \
        [](Config& to, const Config& from) { to.cache.name = from.cache.name; }    \
  }

std::string sentinels(const std::vector<SentinelAddress>& list) {
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ", ") + to_string(s);
  return out;
}

const std::vector<Key>& keys() {
  static const std::vector<Key> table = [] {
    std::vector<Key> k = {
        PGRELAY_KEY(admin_databases, false, joined(c.admin_databases)),
        PGRELAY_KEY(admin_users, false, joined(c.admin_users)),
        PGRELAY_KEY(auth_cache_ttl, true, format_duration(c.auth_cache_ttl)),
        PGRELAY_KEY(auth_file, false, c.auth_file),
        PGRELAY_KEY(auth_query, false, c.auth_query),
        PGRELAY_KEY(auth_type, false, to_string(c.auth_type)),
        PGRELAY_KEY(auth_user, false, c.auth_user),
        // [cache]'s lease length (shown with the Sentinel keys below), since the Redis tier's
        // behaviour under load turns on it (docs/cache.md, "Leases"). Fixed at start.
        Key{"cache.redis_lease", false, [](const Config& c) -> std::string { return format_duration(c.cache.redis_lease); },
            [](Config& to, const Config& from) { to.cache.redis_lease = from.cache.redis_lease; }},
        PGRELAY_CACHE_KEY(redis_master_name, c.cache.redis_master_name),
        PGRELAY_CACHE_KEY(redis_sentinel_password, c.cache.redis_sentinel_password.empty() ? "" : "***"),
        PGRELAY_CACHE_KEY(redis_sentinels, sentinels(c.cache.redis_sentinels)),
        PGRELAY_KEY(client_idle_timeout, true, format_duration(c.client_idle_timeout)),
        PGRELAY_TLS_KEY(client_tls_ca_file, client_tls, ca_file, c.client_tls.ca_file),
        PGRELAY_TLS_KEY(client_tls_cert_file, client_tls, cert_file, c.client_tls.cert_file),
        PGRELAY_TLS_KEY(client_tls_ciphers, client_tls, ciphers, c.client_tls.ciphers),
        PGRELAY_TLS_KEY(client_tls_key_file, client_tls, key_file, c.client_tls.key_file),
        PGRELAY_TLS_KEY(client_tls_protocols, client_tls, protocols, to_config_string(c.client_tls.protocols)),
        PGRELAY_TLS_KEY(client_tls_sslmode, client_tls, sslmode, to_string(c.client_tls.sslmode)),
        PGRELAY_KEY(client_login_timeout, true, format_duration(c.client_login_timeout)),
        PGRELAY_KEY(idle_transaction_timeout, true, format_duration(c.idle_transaction_timeout)),
        PGRELAY_KEY(listen_addr, false, c.listen_addr),
        PGRELAY_KEY(log_parameters, true, c.log_parameters ? "true" : "false"),
        PGRELAY_KEY(listen_port, false, std::to_string(c.listen_port)),
        PGRELAY_KEY(log_level, true, to_string(c.log_level)),
        PGRELAY_KEY(max_client_conn, true, std::to_string(c.max_client_conn)),
        PGRELAY_POOL_KEY(max_db_connections, std::to_string(c.pool.max_db_connections)),
        PGRELAY_KEY(max_fingerprints, false, std::to_string(c.max_fingerprints)),
        PGRELAY_KEY(max_message_size, true, std::to_string(c.max_message_size)),
        PGRELAY_POOL_KEY(max_pool_size, std::to_string(c.pool.max_pool_size)),
        PGRELAY_KEY(max_prepared_statements, true, std::to_string(c.max_prepared_statements)),
        PGRELAY_KEY(max_startup_packet_size, false, std::to_string(c.max_startup_packet_size)),
        PGRELAY_KEY(max_user_connections, true, std::to_string(c.max_user_connections)),
        PGRELAY_KEY(metrics_listen, false, c.metrics_listen),
        PGRELAY_KEY(metrics_top_fingerprints, true, std::to_string(c.metrics_top_fingerprints)),
        PGRELAY_POOL_KEY(min_pool_size, std::to_string(c.pool.min_pool_size)),
        PGRELAY_KEY(n_plus_one_log_interval, false, format_duration(c.n_plus_one_log_interval)),
        PGRELAY_KEY(n_plus_one_threshold, true, std::to_string(c.n_plus_one_threshold)),
        PGRELAY_KEY(n_plus_one_window, true, format_duration(c.n_plus_one_window)),
        PGRELAY_KEY(pipeline_connections, true, std::to_string(c.pipeline_connections)),
        PGRELAY_KEY(pipeline_depth, true, std::to_string(c.pipeline_depth)),
        PGRELAY_KEY(pipeline_max_wait, true, format_duration(c.pipeline_max_wait)),
        PGRELAY_KEY(pipelining, true, c.pipelining ? "true" : "false"),
        PGRELAY_POOL_KEY(pool_mode, to_string(c.pool.pool_mode)),
        PGRELAY_POOL_KEY(pool_size, std::to_string(c.pool.pool_size)),
        PGRELAY_KEY(query_stats, true, c.query_stats ? "true" : "false"),
        PGRELAY_KEY(query_text_length, false, std::to_string(c.query_text_length)),
        PGRELAY_KEY(query_timeout, true, format_duration(c.query_timeout)),
        PGRELAY_KEY(query_wait_timeout, true, format_duration(c.query_wait_timeout)),
        PGRELAY_POOL_KEY(reserve_pool_size, std::to_string(c.pool.reserve_pool_size)),
        PGRELAY_KEY(reserve_pool_timeout, true, format_duration(c.reserve_pool_timeout)),
        PGRELAY_POOL_KEY(scale_down_delay, format_duration(c.pool.scale_down_delay)),
        PGRELAY_POOL_KEY(scale_down_threshold, number(c.pool.scale_down_threshold)),
        PGRELAY_POOL_KEY(scale_up_threshold, number(c.pool.scale_up_threshold)),
        PGRELAY_KEY(server_check_delay, true, format_duration(c.server_check_delay)),
        PGRELAY_KEY(server_check_query, true, c.server_check_query),
        PGRELAY_KEY(server_connect_timeout, true, format_duration(c.server_connect_timeout)),
        PGRELAY_KEY(server_idle_timeout, true, format_duration(c.server_idle_timeout)),
        PGRELAY_KEY(server_lifetime, true, format_duration(c.server_lifetime)),
        PGRELAY_KEY(server_login_retry, true, format_duration(c.server_login_retry)),
        PGRELAY_POOL_KEY(server_reset_query, c.pool.server_reset_query),
        PGRELAY_TLS_KEY(server_tls_ca_file, server_tls, ca_file, c.server_tls.ca_file),
        PGRELAY_TLS_KEY(server_tls_cert_file, server_tls, cert_file, c.server_tls.cert_file),
        PGRELAY_TLS_KEY(server_tls_ciphers, server_tls, ciphers, c.server_tls.ciphers),
        PGRELAY_TLS_KEY(server_tls_key_file, server_tls, key_file, c.server_tls.key_file),
        PGRELAY_TLS_KEY(server_tls_protocols, server_tls, protocols, to_config_string(c.server_tls.protocols)),
        PGRELAY_TLS_KEY(server_tls_sslmode, server_tls, sslmode, to_string(c.server_tls.sslmode)),
        PGRELAY_POOL_KEY(session_state, to_string(c.pool.session_state)),
        PGRELAY_KEY(shutdown_timeout, true, format_duration(c.shutdown_timeout)),
        PGRELAY_KEY(slow_query_log, false, c.slow_query_log),
        PGRELAY_KEY(slow_query_log_rate, true, std::to_string(c.slow_query_log_rate)),
        PGRELAY_KEY(slow_query_threshold, true, format_duration(c.slow_query_threshold)),
        PGRELAY_KEY(statement_event_log, false, c.statement_event_log),
        PGRELAY_KEY(stats_users, false, joined(c.stats_users)),
        PGRELAY_KEY(takeover_socket, false, c.takeover_socket),
        PGRELAY_TCP_KEY(tcp_keepalive, keepalive, c.tcp.keepalive ? "true" : "false"),
        PGRELAY_TCP_KEY(tcp_keepcnt, keepcnt, std::to_string(c.tcp.keepcnt)),
        PGRELAY_TCP_KEY(tcp_keepidle, keepidle, format_duration(c.tcp.keepidle)),
        PGRELAY_TCP_KEY(tcp_keepintvl, keepintvl, format_duration(c.tcp.keepintvl)),
        PGRELAY_TCP_KEY(tcp_user_timeout, user_timeout, format_duration(c.tcp.user_timeout)),
        PGRELAY_KEY(unix_socket_dir, false, c.unix_socket_dir),
        PGRELAY_KEY(workers, false, std::to_string(c.workers)),
        PGRELAY_KEY(busy_poll_us, false, std::to_string(c.busy_poll_us)),
    };
    std::sort(k.begin(), k.end(), [](const Key& a, const Key& b) { return std::string_view(a.name) < b.name; });
    return k;
  }();
  return table;
}

#undef PGRELAY_KEY
#undef PGRELAY_POOL_KEY
#undef PGRELAY_TLS_KEY
#undef PGRELAY_TCP_KEY
#undef PGRELAY_CACHE_KEY

const Key* find_key(std::string_view name) {
  for (const Key& k : keys())
    if (name == k.name) return &k;
  return nullptr;
}

}  // namespace

std::string format_duration(Duration d) {
  const auto ms = d.count();
  if (ms == 0) return "0";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  const auto s = ms / 1000;
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "min";
  return std::to_string(s) + "s";
}

std::vector<SettingRow> setting_rows(const Config& config) {
  static const Config defaults;
  std::vector<SettingRow> rows;
  for (const Key& k : keys()) rows.push_back({k.name, k.show(config), k.show(defaults), k.changeable});
  return rows;
}

std::vector<std::string> changeable_keys() {
  std::vector<std::string> out;
  for (const Key& k : keys())
    if (k.changeable) out.push_back(k.name);
  return out;
}

pgrelay::Result<Config> apply_setting(const Config& current, std::string_view key, std::string_view toml_value) {
  const Key* k = find_key(key);
  if (!k) {
    return pgrelay::Error{"42601", "unknown configuration key \"" + std::string(key) + "\" (SHOW CONFIG lists them)"};
  }
  if (!k->changeable) {
    return pgrelay::Error{"55P02", "\"" + std::string(key) + "\" cannot be changed at run time: edit the config file "
                                   "and RELOAD (or restart for listen and worker keys). SET can change: " +
                                   joined(changeable_keys())};
  }
  if (toml_value.find_first_of("\r\n") != std::string_view::npos) {
    return pgrelay::Error{"22023", "invalid value for \"" + std::string(key) + "\": expected one value on one line"};
  }
  // The loader checks the value exactly as it would in the file.
  const std::string toml = "[pgrelay]\n" + std::string(key) + " = " + std::string(toml_value) + "\n";
  auto parsed = parse_config(toml, "SET");
  if (!parsed.ok()) {
    std::string why = parsed.error().message;
    // "SET:2: pgrelay.key: expected ..." -> "expected ..."
    const std::string prefix = "pgrelay." + std::string(key) + ": ";
    if (auto at = why.find(prefix); at != std::string::npos) why = why.substr(at + prefix.size());
    return pgrelay::Error{"22023", "invalid value for \"" + std::string(key) + "\": " + why};
  }
  Config next = current;
  k->copy(next, *parsed);
  return next;
}

}  // namespace pgrelay::conf
