// The read-replica part of the schema: [databases.NAME] replicas and their limits, [users.NAME].
#include "conf/replica_loader.h"

#include <array>
#include <charconv>
#include <string>

#include "conf/url.h"

namespace pgrelay::conf {
namespace {

constexpr std::array<std::string_view, 2> kOffOn = {"off", "on"};

// "postgresql://host[:port]" (user, password, database and parameters come from the entry) or
// "host[:port]".
pgrelay::Result<ReplicaEndpoint> parse_replica(const std::string& text) {
  const bool url = text.starts_with("postgresql://") || text.starts_with("postgres://");
  auto parsed = url ? parse_postgres_url(text) : parse_url_after_scheme(text, PostgresUrl{});
  if (!parsed) return parsed.error();
  if (!parsed->more_hosts.empty()) return pgrelay::Error{"", "one replica per list item; give one host"};
  if (!parsed->user.empty() || !parsed->password.empty() || !parsed->dbname.empty() || !parsed->params.empty())
    return pgrelay::Error{"", "a replica takes its database, user, password and parameters from the entry; "
                              "give only host and port"};
  return ReplicaEndpoint{.host = parsed->host, .port = parsed->port};
}

}  // namespace

void read_database_replicas(TableReader& r, DatabaseEntry& entry) {
  ReplicaSettings& rs = entry.replicas;
  std::vector<std::string> urls;
  if (r.read_string_list("replicas", /*allow_single=*/false, /*allow_empty=*/true, urls)) {
    for (const std::string& u : urls) {
      auto endpoint = parse_replica(u);
      if (!endpoint) {
        r.error("replicas", "expected postgresql://host[:port] or host[:port] for each replica, got \"" + u +
                                "\": " + endpoint.error().message);
        continue;
      }
      rs.replicas.push_back(*endpoint);
    }
  }
  size_t routing = 0;
  if (r.read_choice("read_routing", kOffOn, routing)) rs.read_routing = routing == 1;
  if (const toml::node* lag = r.peek("max_replica_lag")) {
    // A duration is a string with a time unit; a size is an integer or a string ending in B.
    const auto* s = lag->as_string();
    const bool time = s && !s->get().empty() && s->get().back() != 'B';
    if (time) {
      if (r.read_duration("max_replica_lag", false, rs.max_lag_time)) rs.max_lag_bytes = 0;
    } else {
      uint32_t bytes = 0;
      if (r.read_size("max_replica_lag", 1, UINT32_MAX, bytes)) {
        rs.max_lag_bytes = bytes;
        rs.max_lag_time = Duration{0};
      }
    }
  }
  r.read_bool("primary_reads", rs.primary_reads);
  r.read_duration("replica_check_interval", false, rs.check_interval);
  if (rs.read_routing && rs.replicas.empty() && r.has("read_routing"))
    r.error("read_routing", "expected replicas = [\"postgresql://host:port\", ...] with read_routing = \"on\", got none");
}

namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  for (size_t from = 0;;) {
    const size_t comma = text.find(',', from);
    out.push_back(text.substr(from, comma == std::string::npos ? comma : comma - from));
    if (comma == std::string::npos) return out;
    from = comma + 1;
  }
}

}  // namespace

void read_primary_hosts(TableReader& r, const std::string& host, const std::string& ports, DatabaseEntry& entry) {
  const std::vector<std::string> hosts = split_commas(host);
  std::vector<int> numbers;
  if (!ports.empty()) {
    for (const std::string& p : split_commas(ports)) {
      int n = 0;
      const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
      if (ec != std::errc() || end != p.data() + p.size() || n < 1 || n > 65535) {
        r.error("port", "expected a port 1..65535, or one per host separated by commas (\"5432,5433\"), got \"" + ports + "\"");
        return;
      }
      numbers.push_back(n);
    }
  } else {
    numbers.push_back(entry.port);
  }
  if (numbers.size() != 1 && numbers.size() != hosts.size()) {
    r.error("port", "expected one port, or as many as host has hosts (" + std::to_string(hosts.size()) + "), got \"" +
                        ports + "\"");
    return;
  }
  std::vector<ReplicaEndpoint> endpoints;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (hosts[i].empty()) {
      r.error("host", "expected host names separated by commas, got an empty one in \"" + host + "\"");
      return;
    }
    endpoints.push_back(ReplicaEndpoint{.host = hosts[i], .port = numbers[numbers.size() == 1 ? 0 : i]});
  }
  entry.host = endpoints.front().host;
  entry.port = endpoints.front().port;
  if (endpoints.size() > 1) entry.primary_hosts = std::move(endpoints);
}

void read_users(const toml::table& users, Diagnostics& diag, Config& cfg) {
  for (auto&& [key, node] : users) {
    const std::string name(key.str());
    const std::string dotted = dotted_key("users", name);
    const toml::table* table = node.as_table();
    if (!table) {
      diag.add(line_of(node), dotted, "expected a table ([" + dotted + "] with read_routing), got " + describe(node));
      continue;
    }
    TableReader r(*table, dotted, diag);
    UserEntry u;
    size_t routing = 0;
    if (r.read_choice("read_routing", kOffOn, routing)) u.read_routing = routing == 1;
    r.reject_unknown_keys();
    cfg.users[name] = u;
  }
}

}  // namespace pgrelay::conf
