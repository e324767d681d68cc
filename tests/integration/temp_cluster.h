// A PostgreSQL cluster of one test's own (scripts/pg-temp), for tests that stop, kill or restart
// it: the shared cluster (cluster.sh, the pg_cluster fixture) must stay up for everyone else.
//
// Commits are synchronous (pg-temp's default turns synchronous_commit off, which would let a
// crash lose transactions the clients were told had committed); fsync stays off, as only the
// server process dies, never the machine. The cluster runs as the postgres user when the test
// runs as root.
#pragma once

#include <sys/types.h>

#include <string>

#include "harness.h"

namespace pgrelay::it {

class TempCluster {
 public:
  // Starts it (initdb and start: a few seconds); `extra_conf` is appended to postgresql.conf.
  // Throws with pg-temp's output when it fails.
  explicit TempCluster(const std::string& name, const std::string& extra_conf = "");
  ~TempCluster();                              // stops it and removes its directory
  TempCluster(const TempCluster&) = delete;
  TempCluster& operator=(const TempCluster&) = delete;

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string conninfo(const std::string& db = "postgres") const;
  // A [databases.NAME] body for RelayConfig::add_database that points at this cluster's `db`.
  std::string database_entry(const std::string& db = "postgres") const;

  // SIGKILL to the postmaster and every process it started (a crash: no shutdown checkpoint,
  // crash recovery at the next start). Returns once they are all gone.
  void kill9();
  void stop_fast();                            // pg_ctl stop -m fast
  void start();                                // pg_ctl start, waiting until it accepts connections
  pid_t postmaster_pid() const;                // from postmaster.pid; -1 when not running

 private:
  std::string pg_ctl(const std::string& args) const;
  std::string dir_;
  int port_ = 0;
};

}  // namespace pgrelay::it
