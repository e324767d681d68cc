// Loading a Config: the [pgrelay] and [databases.NAME] schema over TOML, then the environment.
#include "conf/loader.h"

#include <arpa/inet.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include <toml++/toml.h>

#include "conf/analyzer_loader.h"
#include "conf/cache_loader.h"
#include "conf/auth_loader.h"
#include "conf/conf_error.h"
#include "conf/pool_loader.h"
#include "conf/replica_loader.h"
#include "conf/table_reader.h"
#include "conf/tls_loader.h"
#include "conf/url.h"
#include "conf/url_params.h"

namespace pgrelay::conf {
namespace {

constexpr std::array<std::string_view, 4> kLogLevels = {"debug", "info", "warning", "error"};
constexpr std::array<LogLevel, 4> kLogLevelValues = {LogLevel::kDebug, LogLevel::kInfo,
                                                     LogLevel::kWarning, LogLevel::kError};

// What proxy/ can bind: an IP literal, "*" (all IPv4 interfaces) or "localhost". Checked here
// so a typo is reported with its file and line, not when the listener starts.
bool is_listen_addr(const std::string& addr) {
  if (addr == "*" || addr == "localhost") return true;
  unsigned char buf[16];
  return ::inet_pton(AF_INET, addr.c_str(), buf) == 1 || ::inet_pton(AF_INET6, addr.c_str(), buf) == 1;
}

constexpr const char* kListenAddrExpected =
    "expected an IPv4 or IPv6 address, \"*\" or \"localhost\"";

// The URL as it may appear in an error: whatever follows "user:" in the user info is hidden.
std::string redact_url(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return "\"" + std::string(url) + "\"";
  const size_t start = scheme + 3;
  const size_t auth_end = std::min(url.find_first_of("/?#", start), url.size());
  const size_t at = url.substr(0, auth_end).rfind('@');
  std::string out(url);
  if (at != std::string_view::npos && at > start) {
    const size_t colon = url.substr(start, at - start).find(':');
    if (colon != std::string_view::npos) out.replace(start + colon + 1, at - start - colon - 1, "***");
  }
  return "\"" + out + "\"";
}

// "host:port" or "[v6]:port" for metrics_listen; "" switches the endpoint off.
void read_metrics_listen(TableReader& r, Config& cfg) {
  std::string value;
  if (!r.read_string("metrics_listen", value)) return;
  if (value.empty()) {
    cfg.metrics_listen.clear();
    cfg.metrics_port = 0;
    return;
  }
  const std::string expected = "expected \"host:port\" (IPv6 as \"[::1]:9930\") or \"\" for none, got \"" + value + "\"";
  std::string host;
  std::string port;
  if (value.front() == '[') {
    const size_t close = value.find(']');
    if (close == std::string::npos || close + 1 >= value.size() || value[close + 1] != ':') return r.error("metrics_listen", expected);
    host = value.substr(1, close - 1);
    port = value.substr(close + 2);
  } else {
    const size_t colon = value.rfind(':');
    if (colon == std::string::npos || value.find(':') != colon) return r.error("metrics_listen", expected);
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::atoi(port.c_str()) < 1 || std::atoi(port.c_str()) > 65535) {
    return r.error("metrics_listen", "expected a port 1..65535 after the address, got \"" + value + "\"");
  }
  if (!is_listen_addr(host)) return r.error("metrics_listen", std::string(kListenAddrExpected) + ", got \"" + value + "\"");
  cfg.metrics_listen = value;
  cfg.metrics_addr = host == "*" ? "0.0.0.0" : host == "localhost" ? "127.0.0.1" : host;
  cfg.metrics_port = std::atoi(port.c_str());
}

// The admin console's database names and the metrics endpoint.
void read_admin_settings(TableReader& r, Config& cfg) {
  r.read_string_list("admin_databases", /*allow_single=*/true, /*allow_empty=*/true, cfg.admin_databases);
  read_metrics_listen(r, cfg);
}

void read_pgrelay(TableReader& r, Config& cfg) {
  std::string addr;
  if (r.read_string("listen_addr", addr)) {
    if (is_listen_addr(addr)) {
      cfg.listen_addr = addr;
    } else {
      r.error("listen_addr", std::string(kListenAddrExpected) + ", got \"" + addr + "\"");
    }
  }
  r.read_int("listen_port", 1, 65535, cfg.listen_port);
  r.read_string("unix_socket_dir", cfg.unix_socket_dir);
  r.read_string("takeover_socket", cfg.takeover_socket);
  r.read_int("workers", 0, 256, cfg.workers);
  r.read_int("busy_poll_us", 0, 1000, cfg.busy_poll_us);
  size_t level = 0;
  if (r.read_choice("log_level", kLogLevels, level)) cfg.log_level = kLogLevelValues[level];
  r.read_int("max_client_conn", 1, 1'000'000, cfg.max_client_conn);
  r.read_int("max_user_connections", 0, 1'000'000, cfg.max_user_connections);
  r.read_duration("client_login_timeout", false, cfg.client_login_timeout);
  r.read_duration("server_connect_timeout", false, cfg.server_connect_timeout);
  r.read_duration("server_idle_timeout", true, cfg.server_idle_timeout);
  r.read_duration("query_wait_timeout", true, cfg.query_wait_timeout);
  r.read_duration("shutdown_timeout", true, cfg.shutdown_timeout);
  r.read_duration("server_lifetime", true, cfg.server_lifetime);
  r.read_duration("server_login_retry", true, cfg.server_login_retry);
  r.read_duration("reserve_pool_timeout", false, cfg.reserve_pool_timeout);
  r.read_duration("server_check_delay", true, cfg.server_check_delay);
  r.read_string("server_check_query", cfg.server_check_query);
  r.read_duration("client_idle_timeout", true, cfg.client_idle_timeout);
  r.read_duration("idle_transaction_timeout", true, cfg.idle_transaction_timeout);
  r.read_duration("query_timeout", true, cfg.query_timeout);
  r.read_size("max_message_size", 1024, 1u << 30, cfg.max_message_size);
  r.read_size("max_startup_packet_size", 1024, 1u << 20, cfg.max_startup_packet_size);
  r.read_int("max_prepared_statements", 0, 100'000, cfg.max_prepared_statements);
  r.read_bool("tcp_keepalive", cfg.tcp.keepalive);
  r.read_duration("tcp_keepidle", true, cfg.tcp.keepidle);
  r.read_duration("tcp_keepintvl", true, cfg.tcp.keepintvl);
  r.read_int("tcp_keepcnt", 0, 127, cfg.tcp.keepcnt);   // Linux's limit
  r.read_duration("tcp_user_timeout", true, cfg.tcp.user_timeout);
  r.read_bool("pipelining", cfg.pipelining);
  r.read_int("pipeline_connections", 1, 64, cfg.pipeline_connections);
  r.read_int("pipeline_depth", 1, 1024, cfg.pipeline_depth);
  r.read_duration("pipeline_max_wait", false, cfg.pipeline_max_wait);
  r.read_string("statement_event_log", cfg.statement_event_log);
  read_analyzer_settings(r, cfg);
  read_auth_settings(r, cfg);
  read_admin_settings(r, cfg);
  read_tls_settings(r, cfg);
  read_pool(r, cfg.pool, "");
  r.reject_unknown_keys();
}

// One [databases.NAME] table. It inherits the pool settings and server_tls_sslmode of [pgrelay] (`cfg`).
DatabaseEntry read_database(TableReader& r, const std::string& name, const Config& cfg) {
  DatabaseEntry e;
  e.name = name;
  e.pool = cfg.pool;
  e.cache = cfg.cache;

  std::string url_text;
  const bool has_url = r.read_string("url", url_text, /*secret=*/true);
  std::string host, dbname, user, password;
  int port = 0;
  const bool has_host = r.read_string("host", host);
  // A multi-host primary may give a port per host: port = "5432,5433".
  std::string port_list;
  const toml::node* port_node = r.peek("port");
  const bool has_port = port_node && port_node->is_string() ? r.read_string("port", port_list)
                                                             : r.read_int("port", 1, 65535, port);
  const bool has_dbname = r.read_string("dbname", dbname);
  const bool has_user = r.read_string("user", user);
  const bool has_password = r.read_string("password", password, /*secret=*/true);
  read_pool(r, e.pool, "[pgrelay]");
  read_database_tls(r, cfg, e);
  read_database_cache(r, e);
  read_database_replicas(r, e);
  r.reject_unknown_keys();

  if (name.empty()) r.table_error("expected a non-empty database name, got \"\"");

  if (has_url) {
    auto parsed = parse_postgres_url(url_text);
    if (!parsed) {
      r.error("url", "expected a postgresql://[user[:password]@]host[:port][/dbname] URL, got " +
                         redact_url(url_text) + ": " + parsed.error().message);
    } else {
      // Silently dropping "?sslmode=require" would connect in a way the operator did not ask.
      if (auto params = read_url_params(parsed->params); !params) {
        r.error("url", "expected a URL whose ?parameters pgrelay takes, got " + params.error().message);
      } else if (params->sslmode) {
        if (r.has("server_tls_sslmode")) {
          r.error("server_tls_sslmode", "expected either url's ?sslmode= or server_tls_sslmode, not both, got both");
        }
        e.server_tls_sslmode = *params->sslmode;
        if (*params->sslmode >= ServerTlsMode::kVerifyCa && cfg.server_tls.ca_file.empty()) {
          r.error("url", "expected server_tls_ca_file in [pgrelay] with ?sslmode=" +
                             std::string(to_string(*params->sslmode)) +
                             " (the server's certificate is checked against it), got none");
        }
      }
      e.host = parsed->host;
      e.port = parsed->port;
      if (!parsed->more_hosts.empty()) {
        e.primary_hosts.push_back(ReplicaEndpoint{.host = e.host, .port = e.port});
        for (const auto& h : parsed->more_hosts) e.primary_hosts.push_back(ReplicaEndpoint{.host = h.host, .port = h.port});
      }
      e.dbname = parsed->dbname;
      e.user = parsed->user;
      e.password = parsed->password;
      // The URL always names the server; dbname, user and password may come from fields when
      // the URL leaves them out (keeping a password out of a URL is common).
      auto conflict = [&](std::string_view key, const std::string& shown) {
        r.error(key, "expected either url or " + std::string(key) + ", not both, got " + shown);
      };
      if (has_host) conflict("host", "\"" + host + "\"");
      if (has_port) conflict("port", port_list.empty() ? std::to_string(port) : "\"" + port_list + "\"");
      if (has_dbname && !parsed->dbname.empty()) conflict("dbname", "\"" + dbname + "\"");
      if (has_user && !parsed->user.empty()) conflict("user", "\"" + user + "\"");
      if (has_password && !parsed->password.empty()) conflict("password", "a string (value hidden)");
    }
  }
  if (has_port && port_list.empty()) e.port = port;
  if (has_host) {
    if (host.empty()) r.error("host", "expected a host name, IP address or socket directory, got \"\"");
    e.host = host;
    read_primary_hosts(r, host, port_list, e);
  } else if (!port_list.empty() && !has_url) {
    read_primary_hosts(r, e.host, port_list, e);
  }
  if (has_dbname) e.dbname = dbname;
  if (has_user) e.user = user;
  if (has_password) e.password = password;

  check_database_replication(r, e);
  if (name == "*" && !e.dbname.empty()) {
    r.error(has_dbname ? "dbname" : "url",
            "expected no dbname in the \"*\" fallback (it uses the name the client asked for), "
            "got \"" + e.dbname + "\"");
  }
  return e;
}

void read_databases(const toml::table& databases, Diagnostics& diag, Config& cfg) {
  for (auto&& [key, node] : databases) {
    const std::string name(key.str());
    const std::string dotted = dotted_key("databases", name);
    const toml::table* table = node.as_table();
    if (!table) {
      const uint32_t line = key.source().begin.line ? key.source().begin.line : line_of(node);
      diag.add(line, dotted, "expected a table ([" + dotted + "] with host, port, ... or url), got " +
                                 describe(node));
      continue;
    }
    TableReader r(*table, dotted, diag);
    if (cfg.is_admin_database(name)) {
      r.table_error("expected a name other than the admin console's (admin_databases), got \"" + name + "\"");
    }
    cfg.databases[name] = read_database(r, name, cfg);
  }
}

// PGRELAY_LISTEN: "host:port", ":port", "port", "[v6]:port".
pgrelay::Result<void> apply_listen(const std::string& value, Config& cfg) {
  const std::string expected =
      "PGRELAY_LISTEN: expected \"host:port\", \":port\" or \"port\" (IPv6 as \"[::1]:6432\"), "
      "got \"" + value + "\"";
  std::string_view host;
  std::string_view port = value;
  bool has_host = false;
  if (!value.empty() && value.front() == '[') {
    const size_t close = value.find(']');
    if (close == std::string::npos || close == 1 || close + 1 >= value.size() ||
        value[close + 1] != ':') {
      return config_error(expected);
    }
    host = std::string_view(value).substr(1, close - 1);
    port = std::string_view(value).substr(close + 2);
    has_host = true;
  } else if (const size_t colon = value.find(':'); colon != std::string::npos) {
    if (value.find(':', colon + 1) != std::string::npos) return config_error(expected);
    host = std::string_view(value).substr(0, colon);
    port = std::string_view(value).substr(colon + 1);
    has_host = !host.empty();
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos) {
    return config_error(expected);
  }
  const int number = std::atoi(std::string(port).c_str());
  if (number < 1 || number > 65535) {
    return config_error("PGRELAY_LISTEN: expected a port 1..65535, got \"" + value + "\"");
  }
  if (has_host && !is_listen_addr(std::string(host))) {
    return config_error("PGRELAY_LISTEN: " + std::string(kListenAddrExpected) + ", got \"" +
                        value + "\"");
  }
  if (has_host) cfg.listen_addr = std::string(host);
  cfg.listen_port = number;
  return {};
}

pgrelay::Result<void> apply_database_url(const std::string& value, Config& cfg) {
  auto url = parse_postgres_url(value);
  if (!url) return config_error("DATABASE_URL: " + url.error().message);
  if (url->dbname.empty()) {
    return config_error("DATABASE_URL: expected a database name in the URL path "
                        "(postgresql://host/dbname), got none");
  }
  auto params = read_url_params(url->params);
  if (!params) return config_error("DATABASE_URL: " + params.error().message);
  if (params->sslmode >= ServerTlsMode::kVerifyCa && cfg.server_tls.ca_file.empty()) {
    return config_error("DATABASE_URL: ?sslmode=" + std::string(to_string(*params->sslmode)) +
                        " needs server_tls_ca_file in [pgrelay] (the server's certificate is checked against it)");
  }
  // Replacing an entry keeps its pool overrides: the file tunes pools, the URL says where to go.
  auto [it, added] = cfg.databases.try_emplace(url->dbname);
  DatabaseEntry& e = it->second;
  if (added) {
    e.pool = cfg.pool;
    e.cache = cfg.cache;
    e.server_tls_sslmode = cfg.server_tls.sslmode;
  }
  if (params->sslmode) e.server_tls_sslmode = *params->sslmode;
  e.name = url->dbname;
  e.host = url->host;
  e.port = url->port;
  e.primary_hosts.clear();
  if (!url->more_hosts.empty()) {
    e.primary_hosts.push_back(ReplicaEndpoint{.host = e.host, .port = e.port});
    for (const auto& h : url->more_hosts) e.primary_hosts.push_back(ReplicaEndpoint{.host = h.host, .port = h.port});
  }
  e.dbname = url->dbname;
  e.user = url->user;
  e.password = url->password;

  if (!cfg.databases.contains("*")) {
    DatabaseEntry fallback;
    fallback.name = "*";
    fallback.host = url->host;
    fallback.port = url->port;
    fallback.password = url->password;
    fallback.pool = cfg.pool;
    fallback.cache = cfg.cache;
    fallback.server_tls_sslmode = params->sslmode.value_or(cfg.server_tls.sslmode);
    cfg.databases.emplace("*", std::move(fallback));
  }
  return {};
}

}  // namespace

Environment Environment::from_process() {
  // Set-but-empty counts as unset, as `VAR= pgrelay` is the usual way to switch one off.
  auto get = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  Environment env;
  env.database_url = get("DATABASE_URL");
  env.listen = get("PGRELAY_LISTEN");
  env.config_path = get("PGRELAY_CONFIG");
  env.redis_url = get("REDIS_URL");
  return env;
}

pgrelay::Result<Config> parse_config(const std::string& toml_text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    return config_error(source + ":" + std::to_string(e.source().begin.line) + ":" +
                        std::to_string(e.source().begin.column) + ": " +
                        std::string(e.description()));
  }

  Config cfg;
  cfg.source = source;
  Diagnostics diag(source);

  for (auto&& [key, node] : root) {
    if (key == "pgrelay" || key == "cache" || key == "databases" || key == "users" || key == "hba") continue;
    const uint32_t line = key.source().begin.line ? key.source().begin.line : line_of(node);
    diag.add(line, dotted_key("", key.str()),
             std::string(node.is_table() ? "unknown section" : "unknown key") +
                 "; expected [pgrelay], [cache], [databases.NAME], [users.NAME] or [[hba]]");
  }
  // [pgrelay] first, whatever the file order: databases inherit its pool settings.
  if (const toml::node* node = root.get("pgrelay")) {
    if (const toml::table* table = node->as_table()) {
      TableReader r(*table, "pgrelay", diag);
      read_pgrelay(r, cfg);
    } else {
      diag.add(line_of(*node), "pgrelay", "expected a table, got " + describe(*node));
    }
  }
  // [cache] before the databases too: they inherit its defaults.
  if (const toml::node* node = root.get("cache")) {
    if (const toml::table* table = node->as_table()) {
      TableReader r(*table, "cache", diag);
      read_cache_section(r, cfg);
    } else {
      diag.add(line_of(*node), "cache", "expected a table, got " + describe(*node));
    }
  }
  if (const toml::node* node = root.get("databases")) {
    if (const toml::table* table = node->as_table()) {
      read_databases(*table, diag, cfg);
    } else {
      diag.add(line_of(*node), "databases", "expected a table of [databases.NAME] tables, got " +
                                                describe(*node));
    }
  }
  if (const toml::node* node = root.get("users")) {
    if (const toml::table* table = node->as_table()) {
      read_users(*table, diag, cfg);
    } else {
      diag.add(line_of(*node), "users", "expected a table of [users.NAME] tables, got " + describe(*node));
    }
  }
  if (const toml::node* node = root.get("hba")) read_hba_rules(*node, diag, cfg);
  if (!diag.empty()) return diag.to_error();
  return cfg;
}

pgrelay::Result<Config> load_config_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return config_error(path + ": cannot read config file: it is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return config_error(path + ": cannot read config file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return config_error(path + ": cannot read config file: " + std::strerror(errno));
  return parse_config(text.str(), path);
}

pgrelay::Result<Config> apply_environment(Config base, const Environment& env) {
  if (env.database_url) {
    if (auto r = apply_database_url(*env.database_url, base); !r) return r.error();
  }
  if (env.listen) {
    if (auto r = apply_listen(*env.listen, base); !r) return r.error();
  }
  if (env.redis_url && !base.cache.redis) {
    auto endpoint = parse_redis_url(*env.redis_url);
    if (!endpoint) return config_error("REDIS_URL: " + endpoint.error().message);
    if (!base.cache.redis_sentinels.empty() && endpoint->kind == RedisEndpoint::Kind::kUnix) {
      return config_error("REDIS_URL: expected redis:// or rediss:// with [cache] redis_sentinels (the sentinels name a host and port), got unix://");
    }
    base.cache.redis = *endpoint;
    for (auto& [name, entry] : base.databases) entry.cache.redis = *endpoint;
  }
  return base;
}

pgrelay::Result<Config> load_config(const std::optional<std::string>& path,
                                    const Environment& env) {
  Config base;
  if (path || env.config_path) {
    auto loaded = load_config_file(path ? *path : *env.config_path);
    if (!loaded) {
      if (path) return loaded.error();
      return config_error(loaded.error().message + " (file named by PGRELAY_CONFIG)");
    }
    base = std::move(loaded).value();
  }
  return apply_environment(std::move(base), env);
}

}  // namespace pgrelay::conf
