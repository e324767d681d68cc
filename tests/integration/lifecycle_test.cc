// Process lifecycle: command line, config checking, SIGHUP reload, graceful SIGTERM/SIGINT.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string_view>
#include <thread>

#include "harness.h"

using namespace pgrelay::it;

namespace {

using Clock = std::chrono::steady_clock;

std::string bin() { return shell_quote(pgrelay_binary()); }

std::string temp_file(const std::string& name, const std::string& text) {
  std::string path = "/tmp/pgrelay-it-" + std::to_string(::getpid()) + "-" + name;
  write_file(path, text);
  return path;
}

bool connects(const std::string& info) {
  Conn c = connect(info);
  return PQstatus(c.get()) == CONNECTION_OK && exec(c.get(), "select 1").ok();
}

// True when some line of `text` starts with "FILE:LINE:" and mentions `key` (plain or dotted).
bool has_error_line(const std::string& text, const std::string& file, int line, const std::string& key) {
  std::string prefix = file + ":" + std::to_string(line) + ":";
  size_t pos = 0;
  while ((pos = text.find(prefix, pos)) != std::string::npos) {
    size_t end = text.find('\n', pos);
    std::string l = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if ((pos == 0 || text[pos - 1] == '\n' || text[pos - 1] == ' ') && l.find(key) != std::string::npos) return true;
    pos += prefix.size();
  }
  return false;
}

bool eventually(const std::function<bool()>& f, Millis timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return f();
}

}  // namespace

TEST_CASE("--help and --version") {
  auto help = run_command(bin() + " --help", 10s);
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("--config") != std::string::npos);
  CHECK(help.output.find("--check-config") != std::string::npos);
  auto version = run_command(bin() + " --version", 10s);
  CHECK(version.exit_code == 0);
  CHECK_MESSAGE(version.output.find(PGRELAY_IT_VERSION) != std::string::npos, version.output);
  // The allocator the build chose (PGRELAY_MALLOC): jemalloc names its own version.
  CHECK_MESSAGE(version.output.find("(malloc: " PGRELAY_IT_MALLOC) != std::string::npos, version.output);
  if (std::string_view(PGRELAY_IT_MALLOC) == "jemalloc")
    CHECK_MESSAGE(version.output.find("(malloc: jemalloc 5.") != std::string::npos, version.output);
}

TEST_CASE("--check-config") {
  SUBCASE("a good file") {
    std::string path = temp_file("good.toml", RelayConfig().render(free_port()));
    auto r = run_command(bin() + " --check-config " + path, 10s);
    CHECK_MESSAGE(r.exit_code == 0, r.output);
    std::remove(path.c_str());
  }
  SUBCASE("a wrong type names file, line and key on stderr") {
    std::string path = temp_file("badtype.toml",
                                 "[pgrelay]\nlisten_addr = \"127.0.0.1\"\nlisten_port = \"not a number\"\n");
    auto r = run_command(bin() + " --check-config " + path + " 2>&1 >/dev/null", 10s);  // stderr only
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(has_error_line(r.output, path, 3, "listen_port"), r.output);
    std::remove(path.c_str());
  }
  SUBCASE("an unknown key is an error") {
    std::string path = temp_file("typo.toml", "[pgrelay]\npool_sise = 5\n");
    auto r = run_command(bin() + " --check-config " + path + " 2>&1 >/dev/null", 10s);
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(has_error_line(r.output, path, 2, "pool_sise"), r.output);
    std::remove(path.c_str());
  }
  SUBCASE("a missing file") {
    auto r = run_command(bin() + " --check-config /tmp/pgrelay-it-does-not-exist.toml", 10s);
    CHECK(r.exit_code != 0);
    CHECK(r.output.find("/tmp/pgrelay-it-does-not-exist.toml") != std::string::npos);
  }
}

TEST_CASE("a bad config at start-up: non-zero exit with file:line") {
  std::string path = temp_file("badstart.toml", "[pgrelay]\nworkers = \"two\"\n");
  auto r = run_command(bin() + " -c " + path, 10s);
  CHECK(r.exit_code != 0);
  CHECK(r.exit_code != 124);  // not the timeout: it must not start serving
  CHECK_MESSAGE(has_error_line(r.output, path, 2, "workers"), r.output);
  std::remove(path.c_str());
}

TEST_CASE("--config FILE starts pgrelay, SIGTERM exits 0") {
  int port = free_port();
  std::string path = temp_file("long.toml", RelayConfig().render(port));
  std::string psql = std::string(PGRELAY_IT_PSQL) + " -X -At -h 127.0.0.1 -p " + std::to_string(port) +
                     " -U postgres -d postgres -c 'select 7'";
  auto r = run_command(bin() + " --config " + path + " 2>/dev/null & pid=$!\n"
                       "for i in $(seq 100); do " + psql + " 2>/dev/null && break; sleep 0.1; done\n"
                       "kill -TERM $pid; wait $pid; echo \"exit=$?\"", 30s);
  CHECK_MESSAGE(r.output == "7\nexit=0\n", r.output);
  std::remove(path.c_str());
}

TEST_CASE("SIGHUP reloads the config; a broken file keeps the old one") {
  RelayConfig base;
  base.without_databases().add_database("postgres", "");
  PgrelayProcess relay(base);

  Conn existing = connect_ok(relay.conninfo());
  std::string pid = scalar(existing.get(), "select pg_backend_pid()");
  CHECK_FALSE(connects(relay.conninfo("newdb")));

  RelayConfig added = base;
  added.add_database("newdb", "dbname = \"postgres\"");
  relay.write_config(added);
  relay.signal(SIGHUP);
  REQUIRE_MESSAGE(eventually([&] { return connects(relay.conninfo("newdb")); }, 5s),
                  "[databases.newdb] not usable after SIGHUP; log:\n" << relay.log());
  Conn newdb = connect_ok(relay.conninfo("newdb"));
  CHECK(scalar(newdb.get(), "select current_database()") == "postgres");
  CHECK(scalar(existing.get(), "select pg_backend_pid()") == pid);  // the session survived

  std::string log_before = relay.log();
  relay.write_config_text("[pgrelay\nlisten_port = \n");
  relay.signal(SIGHUP);
  std::this_thread::sleep_for(700ms);
  REQUIRE(relay.running());
  CHECK(connects(relay.conninfo("newdb")));
  CHECK(connects(relay.conninfo()));
  CHECK(scalar(existing.get(), "select 1") == "1");
  std::string new_log = relay.log().substr(log_before.size());
  CHECK_MESSAGE(new_log.find(relay.config_path()) != std::string::npos,
                "the broken reload was not logged with the file name:\n" << new_log);

  // Reload still works after a failed one.
  relay.write_config(base);
  relay.signal(SIGHUP);
  CHECK(eventually([&] { return !connects(relay.conninfo("newdb")); }, 5s));
  CHECK(scalar(existing.get(), "select 1") == "1");
}

TEST_CASE("SIGTERM and SIGINT: running query completes, new connections refused, exit 0") {
  int signo = SIGTERM;
  SUBCASE("SIGTERM") { signo = SIGTERM; }
  SUBCASE("SIGINT") { signo = SIGINT; }
  RelayConfig cfg;
  cfg.set("shutdown_timeout", "\"5s\"");
  PgrelayProcess relay(cfg);
  Conn busy = connect_ok(relay.conninfo());
  REQUIRE(PQsendQuery(busy.get(), "select pg_sleep(1), 'finished'") == 1);
  std::this_thread::sleep_for(300ms);

  auto signalled = Clock::now();
  relay.signal(signo);
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(connects(relay.conninfo()));

  Result r(PQgetResult(busy.get()));
  auto q = to_query_result(busy.get(), r.get());
  REQUIRE_MESSAGE(q.ok(), q.sqlstate << " " << q.message);
  CHECK(q.rows[0][1] == "finished");
  CHECK(PQgetResult(busy.get()) == nullptr);
  busy.reset();

  auto code = relay.wait_exit(7s);
  REQUIRE_MESSAGE(code.has_value(), "pgrelay still running 7s after the signal");
  CHECK(*code == 0);
  CHECK(Clock::now() - signalled < 5s);  // left once its last client had gone, not at the timeout
}

TEST_CASE("shutdown_timeout closes clients that linger") {
  RelayConfig cfg;
  cfg.set("shutdown_timeout", "\"2s\"");
  PgrelayProcess relay(cfg);
  Conn idle = connect_ok(relay.conninfo());
  REQUIRE(scalar(idle.get(), "select 1") == "1");
  auto signalled = Clock::now();
  relay.signal(SIGTERM);
  auto code = relay.wait_exit(6s);
  auto took = Clock::now() - signalled;
  REQUIRE_MESSAGE(code.has_value(), "pgrelay ignored shutdown_timeout");
  CHECK(*code == 0);
  CHECK(took <= 4s);
  CHECK_FALSE(exec(idle.get(), "select 1").ok());
}

TEST_CASE("SIGTERM with no clients exits promptly") {
  PgrelayProcess relay;
  auto signalled = Clock::now();
  relay.signal(SIGTERM);
  auto code = relay.wait_exit(5s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(Clock::now() - signalled < 1500ms);
}

TEST_CASE("signals arriving as soon as the port accepts are handled, not fatal") {
  // A supervisor may signal the moment pgrelay is reachable; the default action of SIGHUP and
  // SIGTERM is to kill the process, so handlers must be in place before the listener opens.
  for (int i = 0; i < 5; ++i) {
    PgrelayProcess relay;
    relay.signal(SIGHUP);
    std::this_thread::sleep_for(100ms);
    REQUIRE_MESSAGE(relay.running(), "SIGHUP right after start-up killed pgrelay (round " << i << ")");
    CHECK(connects(relay.conninfo()));
  }
}
