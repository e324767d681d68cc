// What SHOW CLIENTS and SHOW SERVERS list: one connection each, copied on the thread that owns it.
//
// ClientSession::info() (client_info.cc) runs on the session's worker thread (through
// Control::connections()), and so does Lane::describe(); describe_server() on the thread that owns the connection, or
// under its pool's lock for an idle one. The copies are plain values, safe anywhere.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proxy/net/asio.h"

namespace pgrelay::proxy {

class Pool;
class ServerConnection;

struct ServerInfo {
  std::string database, user;     // the pool's database (as clients name it) and server user
  std::string state;              // "active" (a client has it), "idle", "used" (idle past server_check_delay)
  std::string addr;               // the server: host, or the Unix socket directory
  int port = 0;
  std::string local_addr;
  int local_port = 0;
  std::chrono::system_clock::time_point connect_time, request_time;
  int32_t remote_pid = 0;         // the backend's process id
  uint64_t link = 0;              // the client using it; 0 when none (idle, or a lane's: shared)
  bool close_needed = false;      // RECONNECT, a reload or server_lifetime: closed when back
  std::string application_name;
  std::string tls;                // "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519"; "" when plain
};

struct ClientInfo {
  uint64_t id = 0;                // pgrelay's client id (KILL_CLIENT takes it)
  std::string user, database;
  std::string state;              // "active", "waiting" (for a server connection), "login"
  std::string addr;
  int port = 0;
  std::string local_addr;
  int local_port = 0;
  std::chrono::system_clock::time_point connect_time, request_time;
  std::chrono::steady_clock::duration wait{};   // how long it has been waiting, while "waiting"
  std::string application_name;
  std::string tls;                               // as ServerInfo's
  std::optional<ServerInfo> server;              // the connection it holds now
};

// Every client session and server connection in use, copied on their own threads: the
// sessions, and the connections that pipelining's lanes hold (Control::connections()), then the
// connections clients hold and the idle ones (admin: snapshot_connections()).
struct ConnectionsSnapshot {
  std::vector<ClientInfo> clients;
  std::vector<ServerInfo> servers;
};

// `conn` of `pool` as SHOW SERVERS shows it; `link` is the client holding it (0: idle).
ServerInfo describe_server(const ServerConnection& conn, const Pool& pool, std::string state, uint64_t link,
                           bool close_needed);

// The address and port of a socket endpoint: IPv4/IPv6 text and port, or a Unix socket's path
// and 0.
std::pair<std::string, int> endpoint_text(const sockaddr* sa, size_t len);

// The address and port of a connected socket's local end and peer (endpoint_text of
// getsockname/getpeername); a Unix-domain peer is its socket path (often "") and port 0.
std::pair<std::string, int> local_of(int fd);
std::pair<std::string, int> peer_of(int fd);

// A steady_clock time as wall-clock time (for connect_time and request_time).
std::chrono::system_clock::time_point to_system(std::chrono::steady_clock::time_point t);

}  // namespace pgrelay::proxy
