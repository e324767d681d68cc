// The metrics endpoint: /healthz, /readyz, /metrics; a real Prometheus scraping pgrelay while
// pgbench runs, with packaging/prometheus/alerts.yml loaded and checked by promtool, and every
// PromQL expression of the alerts and of packaging/grafana/pgrelay.json evaluated against it;
// and the scrape's time and size with 100 pools. The query cache runs with a Redis tier (a throwaway
// redis-server), so its panels have series too.
//
// Dashboard expressions have their Grafana variables replaced ($instance and $database by ".*",
// $__rate_interval by 1m); alert expressions are evaluated without their final "> N"
// comparison, which is false in a healthy system: what is checked is that the query behind
// every panel and alert returns a series, so a renamed or missing metric fails here.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "harness.h"
#include "redis_server.h"

using namespace pgrelay::it;

namespace {

using Clock = std::chrono::steady_clock;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A child process (Prometheus) with its output in a file; SIGKILLed when the test ends or dies.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log_path) {
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Child() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  bool running() const { return ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

std::string source_path(const std::string& relative) { return std::string(PGRELAY_SOURCE_DIR) + "/" + relative; }

std::string json_unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) { out += s[i]; continue; }
    const char c = s[++i];
    if (c == 'n') out += '\n';
    else if (c == 't') out += '\t';
    else if (c == 'u' && i + 4 < s.size()) { out += char(std::stoi(s.substr(i + 1, 4), nullptr, 16)); i += 4; }
    else out += c;
  }
  return out;
}

// Every "expr" of the dashboard's panels, with Grafana's variables replaced.
std::vector<std::string> dashboard_expressions() {
  const std::string json = read_file(source_path("packaging/grafana/pgrelay.json"));
  std::vector<std::string> out;
  const std::regex expr(R"re("expr"\s*:\s*"((?:[^"\\]|\\.)*)")re");
  for (auto it = std::sregex_iterator(json.begin(), json.end(), expr); it != std::sregex_iterator(); ++it) {
    std::string e = json_unescape((*it)[1]);
    e = std::regex_replace(e, std::regex(R"(\$__rate_interval)"), "1m");
    e = std::regex_replace(e, std::regex(R"(\$\{?(instance|database)\}?)"), ".*");
    out.push_back(e);
  }
  return out;
}

// Every alert's expr, without its final comparison against a number.
std::vector<std::string> alert_expressions() {
  const std::string yaml = read_file(source_path("packaging/prometheus/alerts.yml"));
  std::vector<std::string> out;
  const std::regex expr(R"(^\s*expr:\s*(.+)$)", std::regex::multiline);
  for (auto it = std::sregex_iterator(yaml.begin(), yaml.end(), expr); it != std::sregex_iterator(); ++it)
    out.push_back(std::regex_replace(std::string((*it)[1]), std::regex(R"(\s*(==|!=|>=|<=|>|<)\s*[0-9.]+\s*$)"), ""));
  return out;
}

std::string promtool_query(int prometheus_port, const std::string& expr) {
  auto r = run_command("promtool query instant http://127.0.0.1:" + std::to_string(prometheus_port) + " " +
                           shell_quote(expr),
                       30s);
  return r.exit_code == 0 ? r.output : "ERROR " + r.output;
}

// pgrelay with its metrics endpoint on a free port. free_port() lets go of the port before
// pgrelay binds it, so a test running beside this one may take it first: then pgrelay serves
// without the endpoint (and says so), and this tries another port.
std::unique_ptr<PgrelayProcess> with_metrics(RelayConfig config, int& port) {
  for (int attempt = 1;; ++attempt) {
    port = free_port();
    config.set("metrics_listen", "\"127.0.0.1:" + std::to_string(port) + "\"");
    auto relay = std::make_unique<PgrelayProcess>(config);
    // The port was free when chosen; another test's process may take it first (then pgrelay
    // logs that it cannot listen, or the port answers nobody's): try another.
    bool answers = false;
    try {
      RawClient probe(port);
      answers = true;
    } catch (const std::exception&) {
    }
    if ((answers && relay->log().find("metrics_listen: cannot listen") == std::string::npos) || attempt == 3) return relay;
  }
}

}  // namespace

TEST_CASE("/healthz, /readyz and /metrics") {
  int metrics = 0;
  auto relay_process = with_metrics(RelayConfig(), metrics);
  PgrelayProcess& relay = *relay_process;
  auto health = http_get(metrics, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  CHECK(http_get(metrics, "/readyz").status == 200);   // the cluster is reachable
  CHECK(http_get(metrics, "/nope").status == 404);
  {
    Conn c = connect_ok(relay.conninfo());
    CHECK(scalar(c.get(), "select 1") == "1");
  }
  auto m = http_get(metrics, "/metrics?x=1");
  CHECK(m.status == 200);
  for (const char* line : {"# TYPE pgrelay_queries_total counter", "pgrelay_queries_total{database=\"postgres\",user=\"postgres\"} 1",
                           "# TYPE pgrelay_query_duration_seconds histogram",
                           "pgrelay_query_duration_seconds_bucket{database=\"postgres\",user=\"postgres\",le=\"0.0001\"}",
                           "pgrelay_client_wait_seconds_bucket{database=\"postgres\",user=\"postgres\",le=\"10\"}",
                           "pgrelay_pool_servers_idle{database=\"postgres\",user=\"postgres\"}",
                           "pgrelay_client_connections_accepted_total ", "pgrelay_info{version=\""})
    CHECK_MESSAGE(contains(m.body, line), std::string(line));
  // The text format: comments, or "name{labels} value".
  const std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+(Inf|NaN)?$)");
  std::istringstream lines(m.body);
  int samples = 0;
  for (std::string l; std::getline(lines, l);) {
    if (l.empty() || l[0] == '#') continue;
    CHECK_MESSAGE(std::regex_match(l, sample), l);
    ++samples;
  }
  CHECK(samples > 50);

  // Nothing to reach: not ready, with the reason.
  int metrics2 = 0;
  auto lonely = with_metrics(RelayConfig().without_databases().add_database(
                                 "postgres", "host = \"127.0.0.1\"\nport = " + std::to_string(closed_port())),
                             metrics2);
  auto ready = http_get(metrics2, "/readyz");
  CHECK(ready.status == 503);
  CHECK(contains(ready.body, "no backend reachable"));
  CHECK(http_get(metrics2, "/healthz").status == 200);
}

TEST_CASE("Prometheus scrapes pgrelay under pgbench; every alert and dashboard query returns a series") {
  REQUIRE_MESSAGE(::access("/usr/bin/prometheus", X_OK) == 0, "install the Debian prometheus package (scripts/install-deps)");
  REQUIRE(::access("/usr/bin/promtool", X_OK) == 0);
  auto check = run_command("promtool check rules " + shell_quote(source_path("packaging/prometheus/alerts.yml")), 30s);
  CHECK_MESSAGE(check.exit_code == 0, check.output);

  RelayConfig config = RelayConfig().set("pool_mode", "\"transaction\"").set("pool_size", "3");
  // The cache's panels and alert get data (select 1 is cacheable), the Redis tier's too.
  RedisServer redis;
  config.databases += "\n[cache]\nenabled = true\nredis_url = \"" + redis.url() + "\"\nredis_timeout = \"50ms\"\n";
  // The replication listener's series (its alerts), from a second name for the same database.
  config.add_database("replicated", "dbname = \"postgres\"\nuser = \"postgres\"\n[databases.replicated.cache]\nreplication = true");
  // Read replicas' and a multi-host primary's series: the cluster is its own "replica" (out of
  // rotation: not in recovery) and both hosts of the primary.
  const std::string cluster = std::to_string(cluster_port());
  config.add_database("routed", "host = \"127.0.0.1,127.0.0.1\"\nport = \"" + cluster + "," + cluster +
                                    "\"\ndbname = \"postgres\"\nreplicas = [\"127.0.0.1:" + cluster +
                                    "\"]\nread_routing = \"on\"\nreplica_check_interval = \"100ms\"");
  int metrics = 0;
  auto relay_process = with_metrics(config, metrics);
  PgrelayProcess& relay = *relay_process;
  {
    Conn routed = connect_ok(relay.conninfo("routed"));
    CHECK(scalar(routed.get(), "select 1") == "1");
  }
  char tmpl[] = "/tmp/pgrelay-it-prometheus-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  write_file(dir + "/prometheus.yml",
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
             "rule_files:\n  - " + source_path("packaging/prometheus/alerts.yml") + "\n"
             "scrape_configs:\n  - job_name: pgrelay\n    static_configs:\n      - targets: ['127.0.0.1:" +
                 std::to_string(metrics) + "']\n");
  const int prom_port = free_port();
  std::vector<std::string> errors;
  {
    Child prometheus({"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml", "--storage.tsdb.path=" + dir + "/data",
                      "--web.listen-address=127.0.0.1:" + std::to_string(prom_port), "--log.level=warn"},
                     dir + "/prometheus.log");
    auto deadline = Clock::now() + 30s;
    while (Clock::now() < deadline && (!port_accepts(prom_port) || http_get(prom_port, "/-/ready").status != 200))
      std::this_thread::sleep_for(100ms);
    REQUIRE_MESSAGE(http_get(prom_port, "/-/ready").status == 200, read_file(dir + "/prometheus.log"));

    // Load: short transactions and single statements, more clients than server connections.
    write_file(dir + "/load.sql", "select 1;\nbegin;\nselect pg_sleep(0.002);\ncommit;\n");
    auto bench = run_command(std::string(PGRELAY_IT_PGBENCH) + " -n -c 6 -j 2 -T 8 -f " + dir + "/load.sql -h 127.0.0.1 -p " +
                                 std::to_string(relay.port()) + " -U postgres postgres",
                             60s);
    CHECK_MESSAGE(bench.exit_code == 0, bench.output);
    // Enough samples for rate() over 1m, and the end of the run scraped.
    deadline = Clock::now() + 20s;
    while (Clock::now() < deadline &&
           !contains(promtool_query(prom_port, "count_over_time(up{job=\"pgrelay\"}[1m]) >= 8"), "=>"))
      std::this_thread::sleep_for(500ms);
    std::this_thread::sleep_for(2s);

    auto up = promtool_query(prom_port, "up{job=\"pgrelay\"}");
    REQUIRE_MESSAGE(contains(up, "=> 1"), up);
    auto exprs = dashboard_expressions();
    CHECK(exprs.size() >= 30);
    auto alerts = alert_expressions();
    CHECK(alerts.size() == 14);
    exprs.insert(exprs.end(), alerts.begin(), alerts.end());
    for (const auto& e : exprs) {
      const std::string out = promtool_query(prom_port, e);
      if (!contains(out, "=>")) errors.push_back(e + "\n  -> " + out);
    }
    CHECK(prometheus.running());
  }
  for (const auto& e : errors) FAIL_CHECK("no series for: " << e);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("scrape time and size with 100 pools") {
  RelayConfig config;
  config.without_databases();
  for (int i = 0; i < 100; ++i) config.add_database("db" + std::to_string(i), "dbname = \"postgres\"\npool_size = 1");
  int metrics = 0;
  auto relay_process = with_metrics(config, metrics);
  PgrelayProcess& relay = *relay_process;
  for (int i = 0; i < 100; ++i) {
    Conn c = connect_ok(relay.conninfo("db" + std::to_string(i)));
    CHECK(scalar(c.get(), "select 1") == "1");
  }
  std::vector<double> ms;
  size_t bytes = 0;
  for (int i = 0; i < 20; ++i) {
    auto start = Clock::now();
    auto m = http_get(metrics, "/metrics");
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    REQUIRE(m.status == 200);
    bytes = m.body.size();
    if (i == 0) {
      for (int p = 0; p < 100; ++p)
        CHECK(contains(m.body, "pgrelay_queries_total{database=\"db" + std::to_string(p) + "\",user=\"postgres\"} 1"));
    }
  }
  std::sort(ms.begin(), ms.end());
  MESSAGE("scrape with 100 pools: " << bytes << " bytes; time min " << ms.front() << " ms, median " << ms[ms.size() / 2]
                                    << " ms, max " << ms.back() << " ms (20 scrapes)");
  CHECK(bytes < 2'000'000);
  CHECK(ms[ms.size() / 2] < 500);
}
