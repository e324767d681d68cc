// A PostgreSQL cluster of one test's own: start, crash, stop, restart (scripts/pg-temp).
#include "temp_cluster.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace pgrelay::it {
namespace {

const std::string kPgBin = "/usr/lib/postgresql/15/bin/";

std::string pg_temp() { return std::string(PGRELAY_SOURCE_DIR) + "/scripts/pg-temp"; }

std::string as_postgres() { return ::geteuid() == 0 ? "runuser -u postgres -- " : ""; }

// The processes whose parent is `parent` (from /proc/*/stat).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream stat("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    std::getline(stat, line);
    // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %ld", &state, &ppid) == 2 && ppid == parent) out.push_back(pid_t(pid));
  }
  ::closedir(d);
  return out;
}

// Running, not a zombie waiting for whoever inherited it to reap it.
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z' && line[close + 2] != 'X';
}

}  // namespace

TempCluster::TempCluster(const std::string& name, const std::string& extra_conf)
    : dir_("/tmp/pgrelay-" + name + "-" + std::to_string(::getpid())) {
  const std::string conf = "synchronous_commit = on\n" + extra_conf;
  auto started = run_command("PGTEMP_CONF=" + shell_quote(conf) + " " + pg_temp() + " start " + dir_, 120s);
  if (started.exit_code != 0) throw std::runtime_error("pg-temp start " + dir_ + ": " + started.output);
  port_ = std::stoi(started.output);
}

TempCluster::~TempCluster() { run_command(pg_temp() + " stop " + dir_, 60s); }

std::string TempCluster::conninfo(const std::string& db) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + db + " user=postgres connect_timeout=5";
}

std::string TempCluster::database_entry(const std::string& db) const {
  return "host = \"127.0.0.1\"\nport = " + std::to_string(port_) + "\ndbname = \"" + db + "\"\n";
}

std::string TempCluster::pg_ctl(const std::string& args) const {
  return as_postgres() + kPgBin + "pg_ctl -D " + dir_ + "/data " + args;
}

pid_t TempCluster::postmaster_pid() const {
  std::ifstream f(dir_ + "/data/postmaster.pid");
  long pid = -1;
  if (!(f >> pid) || !alive(pid_t(pid))) return -1;
  return pid_t(pid);
}

void TempCluster::kill9() {
  pid_t pm = postmaster_pid();
  if (pm <= 0) throw std::runtime_error("kill9: PostgreSQL in " + dir_ + " is not running");
  std::vector<pid_t> victims = children_of(pm);
  ::kill(pm, SIGKILL);
  for (pid_t c : victims) ::kill(c, SIGKILL);
  victims.push_back(pm);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (pid_t p : victims) {
    while (alive(p) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  }
  // The postmaster may linger as a zombie until whoever inherited it reaps it (a container's
  // init may never do so), and PostgreSQL takes a lock file naming an existing process as a
  // server still running: it is dead,
  // so its lock files go, as after a machine's crash.
  std::remove((dir_ + "/data/postmaster.pid").c_str());
  std::remove((dir_ + "/.s.PGSQL." + std::to_string(port_) + ".lock").c_str());
}

void TempCluster::stop_fast() {
  auto r = run_command(pg_ctl("-m fast -w -t 30 stop"), 60s);
  if (r.exit_code != 0) throw std::runtime_error("pg_ctl stop: " + r.output);
}

void TempCluster::start() {
  auto r = run_command(pg_ctl("-l " + dir_ + "/postgres.log -w -t 60 start"), 90s);
  if (r.exit_code != 0) throw std::runtime_error("pg_ctl start: " + r.output + "\n" + read_file(dir_ + "/postgres.log"));
}

}  // namespace pgrelay::it
