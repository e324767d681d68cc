// Online restart (pgrelay --takeover, SIGUSR2): pgbench in transaction pooling, simple and prepared,
// while pgrelay is replaced three times; session state crossing; clients that stay behind; failures.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>
#include <thread>

#include "harness.h"

using namespace pgrelay::it;

namespace {

bool ci() { return std::getenv("CI") != nullptr && std::string(std::getenv("CI")) == "true"; }

// A pgrelay generation started by the test: `binary --takeover -c config`, its output in `log`.
class Successor {
 public:
  Successor(const std::string& binary, const std::string& config, std::string log) : log_(std::move(log)) {
    int log_fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(log_fd >= 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execl(binary.c_str(), binary.c_str(), "--takeover", "-c", config.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(log_fd);
  }
  ~Successor() {
    if (!exit_code_) {
      ::kill(pid_, SIGKILL);
      wait_exit(5s);
    }
  }
  pid_t pid() const { return pid_; }
  std::optional<int> wait_exit(Millis timeout) {
    for (auto until = std::chrono::steady_clock::now() + timeout; !exit_code_;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      } else if (std::chrono::steady_clock::now() > until) {
        break;
      } else {
        std::this_thread::sleep_for(20ms);
      }
    }
    return exit_code_;
  }
  std::string log() const { return read_file(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// The log line of a handing-over process: how many clients went.
int handed_over(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"(takeover: (\d+) client\(s\) handed over)"))) return -1;
  return std::stoi(m[1]);
}

bool pid_alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

RelayConfig takeover_config(const std::string& dir) {
  RelayConfig cfg;
  cfg.pool("transaction", 20);
  cfg.set("takeover_socket", "\"" + dir + "/takeover.sock\"");
  cfg.set("shutdown_timeout", "\"20s\"");
  return cfg;
}

std::string temp_dir() {
  char tmpl[] = "/tmp/pgrelay-it-restart-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

struct PgbenchRun {
  CommandResult result;
  long failed = -1, processed = -1;
  double p99_ms = -1;
};

PgbenchRun parse(CommandResult r) {
  PgbenchRun run;
  std::smatch m;
  if (std::regex_search(r.output, m, std::regex(R"(number of failed transactions: (\d+))"))) run.failed = std::stol(m[1]);
  if (std::regex_search(r.output, m, std::regex(R"(number of transactions actually processed: (\d+))")))
    run.processed = std::stol(m[1]);
  run.result = std::move(r);
  return run;
}

// A long query on `c`, cancelled with the client's cancel key: it fails with 57014.
void check_cancel(PGconn* c) {
  REQUIRE(PQsendQuery(c, "select pg_sleep(30)") == 1);
  std::this_thread::sleep_for(300ms);
  PGcancel* cancel = PQgetCancel(c);
  char err[256];
  CHECK(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  REQUIRE(wait_readable(c, 10s));
  REQUIRE(PQconsumeInput(c) == 1);
  Result r(PQgetResult(c));
  CHECK(to_query_result(c, r.get()).sqlstate == "57014");
  while (PGresult* rest = PQgetResult(c)) PQclear(rest);
}

}  // namespace

TEST_CASE("pgbench (simple and prepared, transaction pooling) runs through three online restarts with 0 failures") {
  const std::string dir = temp_dir();
  RelayConfig cfg = takeover_config(dir);
  PgrelayProcess relay(cfg);
  auto init = run_command(std::string(PGRELAY_IT_PGBENCH) + " -h 127.0.0.1 -p " + std::to_string(relay.port()) +
                          " -U postgres -i -s 1 -q postgres", 60s);
  REQUIRE_MESSAGE(init.exit_code == 0, init.output);

  const int seconds = ci() ? 16 : 30;
  const int clients = 8;
  auto bench = [&](const std::string& mode) {
    return parse(run_command(std::string(PGRELAY_IT_PGBENCH) + " -h 127.0.0.1 -p " + std::to_string(relay.port()) +
                                 " -U postgres -c " + std::to_string(clients) + " -j 1 -T " + std::to_string(seconds) +
                                 " -M " + mode + " postgres",
                             Millis((seconds + 60) * 1000)));
  };
  PgbenchRun simple, prepared;
  std::thread t1([&] { simple = bench("simple"); });
  std::thread t2([&] { prepared = bench("prepared"); });

  // Generations 1 and 2: a copy of the binary (a new file, as after a package upgrade) started
  // with --takeover by the test; generation 3: SIGUSR2 to generation 2, which starts its own binary.
  std::vector<std::unique_ptr<Successor>> gens;
  const auto step = Millis(seconds * 1000 / 4);
  std::this_thread::sleep_for(step);
  {
    const std::string copy = dir + "/pgrelay-new";
    std::filesystem::copy_file(pgrelay_binary(), copy);
    ::chmod(copy.c_str(), 0755);
    gens.push_back(std::make_unique<Successor>(copy, relay.config_path(), dir + "/gen1.log"));
    auto code = relay.wait_exit(25s);
    CHECK_MESSAGE(code == 0, relay.log());
    CHECK_MESSAGE(handed_over(relay.log()) == 2 * clients, relay.log());
  }
  std::this_thread::sleep_for(step);
  gens.push_back(std::make_unique<Successor>(pgrelay_binary(), relay.config_path(), dir + "/gen2.log"));
  CHECK(gens[0]->wait_exit(25s) == 0);
  CHECK_MESSAGE(handed_over(gens[0]->log()) == 2 * clients, gens[0]->log());
  std::this_thread::sleep_for(step);
  ::kill(gens[1]->pid(), SIGUSR2);
  CHECK(gens[1]->wait_exit(25s) == 0);
  const std::string last_log = gens[1]->log();
  CHECK_MESSAGE(handed_over(last_log) == 2 * clients, last_log);
  std::smatch m;
  pid_t gen3 = -1;
  if (std::regex_search(last_log, m, std::regex(R"(pgrelay pid (\d+) is taking over)"))) gen3 = std::stoi(m[1]);
  CHECK(pid_alive(gen3));

  t1.join();
  t2.join();
  for (auto* run : {&simple, &prepared}) {
    CHECK_MESSAGE(run->result.exit_code == 0, run->result.output);   // pgbench exits 2 when a client aborted
    CHECK_MESSAGE(run->failed == 0, run->result.output);
    CHECK_MESSAGE(run->processed > 0, run->result.output);
    CHECK_MESSAGE(run->result.output.find("aborted") == std::string::npos, run->result.output);
  }
  // The last generation serves new clients, and stops as usual.
  Conn c = connect_ok(relay.conninfo());
  CHECK(scalar(c.get(), "select count(*) from pgbench_branches") == "1");
  c.reset();
  if (pid_alive(gen3)) ::kill(gen3, SIGTERM);
  for (int i = 0; i < 250 && pid_alive(gen3); ++i) std::this_thread::sleep_for(20ms);
  CHECK_FALSE(pid_alive(gen3));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a client's settings, prepared statements and cancel key cross; a pinned client stays, is cancelled and finished") {
  const std::string dir = temp_dir();
  PgrelayProcess relay(takeover_config(dir));
  Conn moving = connect_ok(relay.conninfo("postgres", "postgres", "application_name=mover"));
  REQUIRE(exec(moving.get(), "set work_mem = '3MB'").ok());
  REQUIRE(exec(moving.get(), "set datestyle = 'SQL, DMY'").ok());
  Result prep(PQprepare(moving.get(), "twice", "select $1::int * 2", 1, nullptr));
  REQUIRE(PQresultStatus(prep.get()) == PGRES_COMMAND_OK);

  Conn pinned = connect_ok(relay.conninfo());
  REQUIRE(exec(pinned.get(), "create temp table t(x int)").ok());   // pins its server connection

  Successor next(pgrelay_binary(), relay.config_path(), dir + "/next.log");
  for (int i = 0; i < 250 && relay.log().find("handing over") == std::string::npos; ++i)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(500ms);   // the idle client goes at once; the pinned one stays
  CHECK(relay.running());
  // The pinned client is still served by the old process, its temp table and all.
  CHECK(scalar(pinned.get(), "select count(*) from t") == "0");
  // Its cancel key reaches the new process (which accepts now), which passes it to the old one.
  check_cancel(pinned.get());
  pinned.reset();
  CHECK(relay.wait_exit(10s) == 0);   // its last client gone, the old process exits
  CHECK_MESSAGE(handed_over(relay.log()) == 1, relay.log());

  // Only the new process is left: `moving` is its client now, with what it had.
  CHECK(scalar(moving.get(), "show work_mem") == "3MB");
  CHECK(scalar(moving.get(), "show datestyle") == "SQL, DMY");
  CHECK(scalar(moving.get(), "show application_name") == "mover");
  const char* values[1] = {"21"};
  Result exec_prepared(PQexecPrepared(moving.get(), "twice", 1, values, nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(exec_prepared.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(exec_prepared.get(), 0, 0)) == "42");

  // Its cancel key still cancels its query (the CancelRequest reaches the new process).
  check_cancel(moving.get());
  CHECK(scalar(moving.get(), "select 1") == "1");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a takeover that fails leaves the running pgrelay serving") {
  const std::string dir = temp_dir();
  PgrelayProcess relay(takeover_config(dir));
  Conn before = connect_ok(relay.conninfo());

  SUBCASE("--takeover with no pgrelay at takeover_socket exits non-zero and says why") {
    RelayConfig other = takeover_config(dir + "/nowhere");
    const std::string config = dir + "/other.toml";
    write_file(config, other.render(free_port()));
    Successor lone(pgrelay_binary(), config, dir + "/lone.log");
    CHECK(lone.wait_exit(10s) == 1);
    CHECK(lone.log().find("cannot connect to the running pgrelay") != std::string::npos);
  }
  SUBCASE("a process that takes the listening sockets and goes away before it accepts") {
    // Speaks the first half of the takeover and vanishes: the old process must not notice.
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = dir + "/takeover.sock";
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const char hello[] = {'H', 1, 0, 0, 0, 0, 0, 0, 0, 1};
    REQUIRE(::send(fd, hello, sizeof hello, 0) == ssize_t(sizeof hello));
    char buf[512];
    CHECK(::recv(fd, buf, sizeof buf, 0) > 0);   // the listening sockets (their descriptors close with us)
    ::close(fd);
    std::this_thread::sleep_for(300ms);
    CHECK(relay.log().find("failed before it accepted") != std::string::npos);
  }
  SUBCASE("a new process killed while clients are handed over: the old one accepts again") {
    Conn pinned = connect_ok(relay.conninfo());   // keeps the old process handing over
    REQUIRE(exec(pinned.get(), "create temp table t(x int)").ok());
    Successor next(pgrelay_binary(), relay.config_path(), dir + "/next.log");
    for (int i = 0; i < 250 && relay.log().find("handing over") == std::string::npos; ++i)
      std::this_thread::sleep_for(20ms);
    std::this_thread::sleep_for(300ms);   // `before` (idle) has gone to the new process by now
    ::kill(next.pid(), SIGKILL);
    next.wait_exit(5s);
    for (int i = 0; i < 250 && relay.log().find("accepts again") == std::string::npos; ++i)
      std::this_thread::sleep_for(20ms);
    CHECK_MESSAGE(relay.log().find("accepts again") != std::string::npos, relay.log());
    CHECK(scalar(pinned.get(), "select count(*) from t") == "0");
    Conn again = connect_ok(relay.conninfo());   // accepted by the old process again
    CHECK(scalar(again.get(), "select 3") == "3");
    CHECK(relay.running());
    std::filesystem::remove_all(dir);
    return;   // `before` died with the new process: the one loss a crash of the new process costs
  }
  CHECK(relay.running());
  CHECK(scalar(before.get(), "select 1") == "1");
  Conn after = connect_ok(relay.conninfo());
  CHECK(scalar(after.get(), "select 2") == "2");
  std::filesystem::remove_all(dir);
}

TEST_CASE("under a service manager, SIGUSR2's successor becomes the main process (MAINPID=) and says READY=1") {
#if !PGRELAY_IT_SYSTEMD
  MESSAGE("pgrelay was built without libsystemd (libsystemd-dev): sd_notify is compiled out");
  return;
#endif
  const std::string dir = temp_dir();
  // A datagram socket standing in for systemd's $NOTIFY_SOCKET.
  const std::string notify_path = dir + "/notify.sock";
  int notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  notify_path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  REQUIRE(::bind(notify, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{0, 100'000};
  ::setsockopt(notify, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string seen;
  auto wait_for = [&](const std::string& want) {
    for (auto until = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < until;) {
      char buf[4096];
      ssize_t n = ::recv(notify, buf, sizeof buf, 0);
      if (n > 0) seen += std::string(buf, size_t(n)) + "\n";
      if (seen.find(want) != std::string::npos) return true;
    }
    return false;
  };
  ::setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
  PgrelayProcess relay(takeover_config(dir));
  ::unsetenv("NOTIFY_SOCKET");
  REQUIRE(wait_for("READY=1"));
  seen.clear();

  relay.signal(SIGUSR2);
  REQUIRE_MESSAGE(wait_for("MAINPID="), seen);
  const pid_t successor = pid_t(std::stol(seen.substr(seen.find("MAINPID=") + 8)));
  CHECK(successor != relay.pid());
  CHECK(relay.wait_exit(10s) == 0);
  CHECK_MESSAGE(wait_for("READY=1"), seen);   // the successor, once the old process has gone
  Conn c = connect_ok(relay.conninfo());
  CHECK(scalar(c.get(), "select 1") == "1");
  c.reset();
  ::kill(successor, SIGTERM);
  for (int i = 0; i < 250 && pid_alive(successor); ++i) std::this_thread::sleep_for(20ms);
  CHECK_FALSE(pid_alive(successor));
  ::close(notify);
  std::filesystem::remove_all(dir);
}
