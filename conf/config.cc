// Lookups on a loaded Config; the Config itself is a plain value built by loader.cc.
#include "conf/config.h"

#include <algorithm>
#include <thread>

namespace pgrelay::conf {

const char* to_string(PoolMode m) {
  switch (m) {
    case PoolMode::kSession: return "session";
    case PoolMode::kTransaction: return "transaction";
    case PoolMode::kStatement: return "statement";
  }
  return "unknown";
}

const char* to_string(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "unknown";
}

const char* to_string(SessionStatePolicy p) {
  switch (p) {
    case SessionStatePolicy::kPin: return "pin";
    case SessionStatePolicy::kReject: return "reject";
  }
  return "unknown";
}

const DatabaseEntry* Config::find_database(const std::string& name) const {
  if (auto it = databases.find(name); it != databases.end()) return &it->second;
  if (auto it = databases.find("*"); it != databases.end()) return &it->second;
  return nullptr;
}

int Config::effective_workers() const {
  if (workers > 0) return workers;
  // Half the cores, at least one (hardware_concurrency() may report 0 when it cannot tell). A
  // pooler shares its machine with PostgreSQL or with the applications it serves: a loop on every
  // core contends with them for the cores, and every worker's lane and pool hand-offs batch less.
  // On 2 cores, one worker cost 40% less CPU per select-only transaction than two (bench/README).
  const unsigned cores = std::thread::hardware_concurrency();
  return cores < 2 ? 1 : static_cast<int>(cores / 2);
}

bool Config::is_admin(std::string_view user) const {
  return std::find(admin_users.begin(), admin_users.end(), user) != admin_users.end();
}

bool Config::is_stats(std::string_view user) const {
  return is_admin(user) || std::find(stats_users.begin(), stats_users.end(), user) != stats_users.end();
}

bool Config::is_admin_database(std::string_view database) const {
  return std::find(admin_databases.begin(), admin_databases.end(), database) != admin_databases.end();
}

std::string Config::effective_takeover_socket() const {
  if (!takeover_socket.empty()) return takeover_socket;
  if (unix_socket_dir.empty()) return "";
  return unix_socket_dir + "/.s.PGRELAY." + std::to_string(listen_port);
}

bool Config::read_routing(const DatabaseEntry& entry, const std::string& user) const {
  if (entry.replicas.replicas.empty()) return false;
  if (auto it = users.find(user); it != users.end() && it->second.read_routing) return *it->second.read_routing;
  return entry.replicas.read_routing;
}

}  // namespace pgrelay::conf
