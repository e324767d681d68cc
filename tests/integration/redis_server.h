// A throwaway redis-server (Debian's redis-server) for integration tests: a child process on a
// free loopback port and a Unix socket, no persistence, killed with the test.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace pgrelay::it {

class RedisServer {
 public:
  // `extra` goes on redis-server's command line ("--requirepass", "secret"). With `tls`, port()
  // is a TLS port (`extra` names the certificate files) and there is no plain one. Returns once
  // the port accepts connections; throws with the log otherwise.
  explicit RedisServer(std::vector<std::string> extra = {}, bool tls = false);
  // A sentinel (redis-server FILE --sentinel) monitoring `master_name` at 127.0.0.1:`master_port`
  // with quorum 1, a primary down after 1 s; its config file is its own (Sentinel rewrites it).
  static std::unique_ptr<RedisServer> sentinel(const std::string& master_name, int master_port);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  const std::string& unix_socket() const { return socket_path_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  bool running() const { return pid_ > 0; }

  void kill();    // SIGKILL, and waits for it
  void start();   // again, on the same port and socket (after kill())

 private:
  RedisServer(std::vector<std::string> extra, bool tls, bool deferred);   // not started yet

  std::string dir_;
  std::string socket_path_;
  std::string log_path_;
  std::string config_path_;   // "": none (the first argument when set)
  std::vector<std::string> extra_;
  int port_ = 0;
  bool tls_ = false;
  pid_t pid_ = -1;
};

}  // namespace pgrelay::it
