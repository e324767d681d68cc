// pgrelay under a service manager: sd_notify messages (READY, RELOADING, STOPPING, STATUS,
// WATCHDOG) to a datagram socket of the test's own standing in for systemd, and log lines with
// journald priorities when stderr is "the journal" ($JOURNAL_STREAM names its device and inode).
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "harness.h"

using namespace pgrelay::it;

namespace {

using Clock = std::chrono::steady_clock;

// A bound AF_UNIX datagram socket at a temp path: what systemd's $NOTIFY_SOCKET is.
class NotifySocket {
 public:
  NotifySocket() {
    path_ = "/tmp/pgrelay-it-notify-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("cannot bind " + path_);
  }
  ~NotifySocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

  // Messages until one contains `want` (returned last) or the timeout; every one is kept in all().
  std::optional<std::string> wait_for(const std::string& want, Millis timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      timeval tv{0, 50'000};
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      all_.emplace_back(buf, size_t(n));
      if (all_.back().find(want) != std::string::npos) return all_.back();
    }
    return std::nullopt;
  }
  const std::vector<std::string>& all() const { return all_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> all_;
};

}  // namespace

TEST_CASE("Type=notify: READY=1 once listening, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM, watchdog pings") {
#if !PGRELAY_IT_SYSTEMD
  MESSAGE("pgrelay was built without libsystemd (libsystemd-dev): sd_notify is compiled out");
  return;
#endif
  NotifySocket notify;
  ::setenv("NOTIFY_SOCKET", notify.path().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "200000", 1);   // WatchdogSec=200ms: a ping every 100 ms
  PgrelayProcess relay;
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");

  auto ready = notify.wait_for("READY=1", 5s);
  REQUIRE(ready);
  CHECK(ready->find("STATUS=Listening on 127.0.0.1:" + std::to_string(relay.port())) != std::string::npos);
  // The listener accepts by the time READY=1 is sent.
  CHECK(port_accepts(relay.port()));

  // Pings while the workers' loops answer: several within a second.
  auto start = notify.all().size();
  notify.wait_for("no such message", 1s);
  int pings = 0;
  for (size_t i = start; i < notify.all().size(); ++i) pings += notify.all()[i] == "WATCHDOG=1";
  CHECK(pings >= 5);

  relay.signal(SIGHUP);
  auto reloading = notify.wait_for("RELOADING=1", 5s);
  REQUIRE(reloading);
  CHECK(reloading->find("MONOTONIC_USEC=") != std::string::npos);
  CHECK(notify.wait_for("READY=1", 5s));

  // A file that does not load: READY=1 again, and STATUS= says the old configuration runs.
  relay.write_config_text("[pgrelay]\nlisten_port = \"nope\"\n");
  relay.signal(SIGHUP);
  REQUIRE(notify.wait_for("RELOADING=1", 5s));
  auto failed = notify.wait_for("READY=1", 5s);
  REQUIRE(failed);
  CHECK(failed->find("Reload failed") != std::string::npos);

  relay.signal(SIGTERM);
  auto stopping = notify.wait_for("STOPPING=1", 5s);
  REQUIRE(stopping);
  CHECK(stopping->find("STATUS=Shutting down (SIGTERM)") != std::string::npos);
  CHECK(relay.wait_exit(10s) == 0);
}

TEST_CASE("without $NOTIFY_SOCKET nothing is sent and pgrelay runs as before") {
  ::unsetenv("NOTIFY_SOCKET");
  PgrelayProcess relay;
  Conn c = connect_ok(relay.conninfo());
  CHECK(scalar(c.get(), "select 1") == "1");
}

TEST_CASE("stderr is the journal: lines start with the syslog priority instead of a time stamp") {
  std::string log = "/tmp/pgrelay-it-journal-" + std::to_string(::getpid()) + ".log";
  // An error (the cluster's port is taken) and the info lines before it, with JOURNAL_STREAM set to
  // the log file's device:inode as systemd sets it to its stream socket's.
  std::string cmd = ": > " + log + "; export JOURNAL_STREAM=$(stat -c %d:%i " + log + "); PGRELAY_LISTEN=127.0.0.1:" +
                    std::to_string(cluster_port()) + " " + shell_quote(pgrelay_binary()) + " 2>>" + log;
  auto run = run_command(cmd, 10s);
  CHECK(run.exit_code == 1);
  std::string text = read_file(log);
  INFO(text);
  CHECK(text.rfind("<3>ERROR cannot listen on 127.0.0.1:", 0) != std::string::npos);

  // JOURNAL_STREAM naming some other file (a child of a journald service writing elsewhere): time stamps.
  std::string other = ": > " + log + "; JOURNAL_STREAM=1:2 PGRELAY_LISTEN=127.0.0.1:" + std::to_string(cluster_port()) +
                      " " + shell_quote(pgrelay_binary()) + " 2>>" + log;
  CHECK(run_command(other, 10s).exit_code == 1);
  text = read_file(log);
  CHECK(text.find("<3>") == std::string::npos);
  CHECK(text.find(" UTC ERROR cannot listen") != std::string::npos);
  ::unlink(log.c_str());
}
