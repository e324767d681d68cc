// Integration-test harness: processes, sockets and libpq plumbing shared by the test files.
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pgrelay::it {

namespace {

using Clock = std::chrono::steady_clock;

std::string env_or_throw(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    throw std::runtime_error(std::string(name) + " is not set (run the tests through ctest)");
  }
  return v;
}

std::string tail_lines(const std::string& text, size_t n) {
  size_t start = text.size();
  size_t seen = 0;
  while (start > 0) {
    if (text[start - 1] == '\n' && start != text.size() && ++seen == n) break;
    --start;
  }
  return text.substr(start);
}

}  // namespace

// ---- the shared cluster ----------------------------------------------------------------------

int cluster_port() {
  static const int port = [] {
    std::string dir = env_or_throw("PGRELAY_IT_DIR");
    std::string text = read_file(dir + "/port");
    int p = std::atoi(text.c_str());
    if (p <= 0) throw std::runtime_error("no cluster port in " + dir + "/port (fixture not set up?)");
    return p;
  }();
  return port;
}

std::string pgrelay_binary() { return env_or_throw("PGRELAY_BIN"); }

// A port below the kernel's ephemeral range (32768-60999), where no outgoing connection of
// another test can take it between this check and pgrelay's bind; scripts/pg-temp picks its
// clusters' ports from 20000-31999, so these come from 10000-19999.
int free_port() {
  static std::mt19937 pick{std::random_device{}()};
  static std::mutex mu;
  for (int attempt = 0; attempt < 200; ++attempt) {
    int port;
    {
      std::lock_guard lock(mu);
      port = 10000 + int(pick() % 10000);
    }
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(uint16_t(port));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (free) return port;
  }
  throw std::runtime_error("free_port: no free port in 10000-19999");
}

int closed_port() { return free_port(); }

std::string conninfo(int port, const std::string& db, const std::string& user, const std::string& extra) {
  std::string s = "host=127.0.0.1 port=" + std::to_string(port) + " dbname=" + db + " user=" + user +
                  " connect_timeout=5 gssencmode=disable";
  if (!extra.empty()) s += " " + extra;
  return s;
}

std::string direct_conninfo(const std::string& db, const std::string& user, const std::string& extra) {
  return conninfo(cluster_port(), db, user, extra);
}

// ---- RelayConfig -----------------------------------------------------------------------------

RelayConfig::RelayConfig() {
  settings = {
      {"listen_addr", "\"127.0.0.1\""},
      // No Unix socket unless a test asks: a pgrelay the harness kills would leave its file.
      {"unix_socket_dir", "\"\""},
      {"workers", "2"},
      {"pool_size", "20"},
      {"client_login_timeout", "\"5s\""},
      {"query_wait_timeout", "\"10s\""},
      {"shutdown_timeout", "\"5s\""},
      {"max_client_conn", "300"},
      // The tests connect without passwords; client authentication has tests of its own.
      {"auth_type", "\"trust\""},
      // Tests run many pgrelays at once; the metrics tests pick a free port themselves.
      {"metrics_listen", "\"\""},
  };
  // Pipelining is on by default. PGRELAY_IT_PIPELINING=0: every test's pgrelay sends every
  // statement the ordinary way (its own setting wins), so the suite also checks the path without
  // lanes (scripts/test, label unpipelined); =1 sets it on explicitly.
  if (const char* p = std::getenv("PGRELAY_IT_PIPELINING"); p && (std::string(p) == "0" || std::string(p) == "1"))
    settings["pipelining"] = std::string(p) == "1" ? "true" : "false";
  add_database("postgres", "");
  add_database("\"*\"", "");
}

RelayConfig& RelayConfig::set(const std::string& key, const std::string& toml_value) {
  settings[key] = toml_value;
  return *this;
}

RelayConfig& RelayConfig::pool(const std::string& mode, int pool_size) {
  return set("pool_mode", "\"" + mode + "\"").set("pool_size", std::to_string(pool_size));
}

RelayConfig& RelayConfig::without_databases() {
  databases.clear();
  return *this;
}

RelayConfig& RelayConfig::add_database(const std::string& name, const std::string& body) {
  std::string b = body;
  if (b.find("host") == std::string::npos) b = "host = \"127.0.0.1\"\n" + b;
  if (b.find("port") == std::string::npos) b = "port = " + std::to_string(cluster_port()) + "\n" + b;
  if (!b.empty() && b.back() != '\n') b += '\n';
  databases += "\n[databases." + name + "]\n" + b;
  return *this;
}

std::string RelayConfig::render(int listen_port) const {
  std::string out = "[pgrelay]\nlisten_port = " + std::to_string(listen_port) + "\n";
  for (const auto& [k, v] : settings) out += k + " = " + v + "\n";
  return out + databases;
}

// ---- PgrelayProcess --------------------------------------------------------------------------

PgrelayProcess::PgrelayProcess(const RelayConfig& config, Millis ready_timeout) {
  std::string bin = pgrelay_binary();
  if (::access(bin.c_str(), X_OK) != 0) throw std::runtime_error("pgrelay binary not executable: " + bin);
  char tmpl[] = "/tmp/pgrelay-it-proc-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  config_path_ = std::string(tmpl) + "/pgrelay.toml";
  log_path_ = std::string(tmpl) + "/pgrelay.log";
  port_ = free_port();
  write_config(config);

  int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot create " + log_path_);
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execl(bin.c_str(), bin.c_str(), "-c", config_path_.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(log_fd);

  auto deadline = Clock::now() + ready_timeout;
  while (!port_accepts(port_)) {
    std::string why;
    if (!running()) {
      why = "pgrelay exited with " + std::to_string(exit_code_.value_or(-1)) + " before accepting connections";
    } else if (Clock::now() > deadline) {
      why = "pgrelay did not accept connections on port " + std::to_string(port_) + " within the timeout";
    }
    if (!why.empty()) {
      why += "; log:\n" + tail_lines(log(), 30);
      cleanup();  // a throwing constructor gets no destructor call
      throw std::runtime_error(why);
    }
    std::this_thread::sleep_for(20ms);
  }
}

void PgrelayProcess::cleanup() {
  if (pid_ > 0 && running()) {
    ::kill(pid_, SIGKILL);
    wait_exit(5s);
  }
  if (std::getenv("PGRELAY_IT_KEEP") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(config_path_).parent_path(), ec);
  } else {
    std::cerr << "kept " << log_path_ << "\n";
  }
}

PgrelayProcess::~PgrelayProcess() {
  bool was_running = pid_ > 0 && running();
  if (!was_running && exit_code_ && (*exit_code_ == 128 + SIGSEGV || *exit_code_ == 128 + SIGABRT ||
                                     *exit_code_ == 128 + SIGBUS || *exit_code_ == 128 + SIGFPE)) {
    std::cerr << "pgrelay (pid " << pid_ << ") crashed with exit code " << *exit_code_ << "; log tail:\n"
              << tail_lines(log(), 40) << "\n";
  }
  cleanup();
}

std::string PgrelayProcess::conninfo(const std::string& db, const std::string& user,
                                     const std::string& extra) const {
  return it::conninfo(port_, db, user, extra);
}

void PgrelayProcess::write_config(const RelayConfig& config) { write_config_text(config.render(port_)); }

void PgrelayProcess::write_config_text(const std::string& toml) {
  // Write then rename, so a SIGHUP never sees half a file.
  std::string tmp = config_path_ + ".tmp";
  write_file(tmp, toml);
  std::filesystem::rename(tmp, config_path_);
}

void PgrelayProcess::signal(int signo) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, signo);
}

bool PgrelayProcess::running() {
  if (exit_code_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    exit_code_ = -1;
  }
  return false;
}

std::optional<int> PgrelayProcess::wait_exit(Millis timeout) {
  auto deadline = Clock::now() + timeout;
  while (running()) {
    if (Clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
  return exit_code_;
}

std::string PgrelayProcess::log() const { return read_file(log_path_); }

long PgrelayProcess::rss_kib() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// ---- libpq -----------------------------------------------------------------------------------

Conn connect(const std::string& info) {
  std::string s = info;
  if (s.find("connect_timeout") == std::string::npos) s += " connect_timeout=5";
  return Conn(PQconnectdb(s.c_str()));
}

Conn connect_ok(const std::string& info) {
  Conn c = connect(info);
  if (PQstatus(c.get()) != CONNECTION_OK) {
    throw std::runtime_error("connect failed (" + info + "): " + PQerrorMessage(c.get()));
  }
  return c;
}

std::vector<Row> result_rows(PGresult* r) {
  std::vector<Row> rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    Row row;
    for (int j = 0; j < PQnfields(r); ++j) {
      if (PQgetisnull(r, i, j)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(r, i, j), PQgetlength(r, i, j)));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

QueryResult to_query_result(PGconn* c, PGresult* r) {
  QueryResult q;
  if (r == nullptr) {
    q.status = PGRES_FATAL_ERROR;
    q.message = PQerrorMessage(c);
    return q;
  }
  q.status = PQresultStatus(r);
  if (q.status == PGRES_TUPLES_OK || q.status == PGRES_SINGLE_TUPLE) q.rows = result_rows(r);
  q.command_tuples = PQcmdTuples(r);
  auto field = [&](int code) {
    const char* v = PQresultErrorField(r, code);
    return v ? std::string(v) : std::string();
  };
  q.sqlstate = field(PG_DIAG_SQLSTATE);
  q.message = field(PG_DIAG_MESSAGE_PRIMARY);
  q.severity = field(PG_DIAG_SEVERITY_NONLOCALIZED);
  if (q.message.empty() && !q.ok()) q.message = PQresultErrorMessage(r);
  if (q.message.empty() && !q.ok()) q.message = PQerrorMessage(c);
  return q;
}

QueryResult exec(PGconn* c, const std::string& sql) {
  Result r(PQexec(c, sql.c_str()));
  return to_query_result(c, r.get());
}

QueryResult exec_params(PGconn* c, const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  Result r(PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                        nullptr, 0));
  return to_query_result(c, r.get());
}

std::string scalar(PGconn* c, const std::string& sql) {
  QueryResult q = exec(c, sql);
  if (!q.ok()) throw std::runtime_error("`" + sql + "` failed: " + q.sqlstate + " " + q.message);
  if (q.rows.empty() || q.rows[0].empty()) throw std::runtime_error("`" + sql + "` returned no row");
  return q.rows[0][0].value_or("<NULL>");
}

bool wait_readable(PGconn* c, Millis timeout) {
  pollfd p{PQsocket(c), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

QueryResult await_result(PGconn* c, Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (PQisBusy(c)) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_readable(c, left)) throw std::runtime_error("no result in time");
    PQconsumeInput(c);
  }
  QueryResult q;
  for (PGresult* r; (r = PQgetResult(c)) != nullptr;) {
    q = to_query_result(c, r);
    PQclear(r);
  }
  return q;
}

// ---- external commands -----------------------------------------------------------------------

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'') {
      out += "'\\''";
    } else {
      out += ch;
    }
  }
  return out + "'";
}

CommandResult run_command(const std::string& command, Millis timeout) {
  long secs = std::max<long>(1, static_cast<long>(timeout.count() / 1000));
  std::string full = "timeout -k 5 " + std::to_string(secs) + " bash -c " + shell_quote(command) + " 2>&1";
  CommandResult res;
  FILE* f = ::popen(full.c_str(), "r");
  if (f == nullptr) throw std::runtime_error("popen failed for: " + command);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) res.output.append(buf, n);
  int status = ::pclose(f);
  res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return res;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace pgrelay::it

namespace pgrelay::it {

HttpReply http_get(int port, const std::string& path) {
  RawClient c(port);
  c.send("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  const std::string raw = c.read_until_eof(10s);
  HttpReply r;
  if (raw.rfind("HTTP/1.1 ", 0) == 0) r.status = std::atoi(raw.c_str() + 9);
  if (auto end = raw.find("\r\n\r\n"); end != std::string::npos) r.body = raw.substr(end + 4);
  return r;
}

}  // namespace pgrelay::it
