// The admin console through psql and libpq: every SHOW (columns checked against PgBouncer's),
// PAUSE/RESUME, RELOAD with a broken file, access control, bad input, and the other commands.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "harness.h"

using namespace pgrelay::it;

namespace {

// PgBouncer 1.18's columns for the commands pgrelay shares with it, as its console printed them.
// When /usr/sbin/pgbouncer can be started the test also reads them from a live one.
const std::map<std::string, std::string> kPgbouncerColumns = {
    {"POOLS", "database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|"
              "sv_active_cancel|sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode"},
    {"STATS", "database|total_xact_count|total_query_count|total_received|total_sent|total_xact_time|total_query_time|"
              "total_wait_time|avg_xact_count|avg_query_count|avg_recv|avg_sent|avg_xact_time|avg_query_time|"
              "avg_wait_time"},
    {"STATS_TOTALS", "database|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time"},
    {"STATS_AVERAGES", "database|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time"},
    {"CLIENTS", "type|user|database|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|"
                "close_needed|ptr|link|remote_pid|tls|application_name"},
    {"SERVERS", "type|user|database|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|"
                "close_needed|ptr|link|remote_pid|tls|application_name"},
    {"DATABASES", "name|host|port|database|force_user|pool_size|min_pool_size|reserve_pool|pool_mode|max_connections|"
                  "current_connections|paused|disabled"},
    {"USERS", "name|pool_mode"},
    {"CONFIG", "key|value|default|changeable"},
    {"LISTS", "list|items"},
    {"MEM", "name|size|used|free|memtotal"},
    {"VERSION", "version"},
};
// pgrelay's own, and the two PgBouncer 1.18 answers without a result set (HELP is a NOTICE there,
// STATE came later).
const std::vector<std::string> kOwnSubjects = {"HELP", "STATE", "SIZING", "WAITS"};

RelayConfig admin_config() {
  RelayConfig c;
  c.set("pool_mode", "\"transaction\"").set("admin_users", "[\"postgres\"]").set("stats_users", "[\"watcher\"]");
  return c;
}

// psql -A output of `sql` on the console: the header line first, then rows, '|' between fields.
CommandResult psql(const PgrelayProcess& relay, const std::string& sql, const std::string& flags = "-A",
                   const std::string& db = "pgrelay", const std::string& user = "postgres") {
  return run_command(std::string(PGRELAY_IT_PSQL) + " -X -w " + flags + " -P footer=off -h 127.0.0.1 -p " +
                         std::to_string(relay.port()) + " -U " + user + " -d " + db + " -c " + shell_quote(sql),
                     30s);
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The value of `column` in the first row of `q` whose `key_column` is `key`.
std::optional<std::string> cell(PGconn* c, const std::string& sql, const std::string& key_column,
                                const std::string& key, const std::string& column) {
  Result r(PQexec(c, sql.c_str()));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return std::nullopt;
  const int k = PQfnumber(r.get(), key_column.c_str()), v = PQfnumber(r.get(), column.c_str());
  if (k < 0 || v < 0) return std::nullopt;
  for (int i = 0; i < PQntuples(r.get()); ++i)
    if (PQgetvalue(r.get(), i, k) == key) return std::string(PQgetvalue(r.get(), i, v));
  return std::nullopt;
}

// An ERROR's SQLSTATE and hint.
std::pair<std::string, std::string> error_of(PGconn* c, const std::string& sql) {
  Result r(PQexec(c, sql.c_str()));
  auto field = [&](int code) {
    const char* v = PQresultErrorField(r.get(), code);
    return v ? std::string(v) : std::string();
  };
  return {field(PG_DIAG_SQLSTATE), field(PG_DIAG_MESSAGE_HINT)};
}

// A real PgBouncer on a free port (as the postgres user when we are root), for its column names.
class LivePgbouncer {
 public:
  LivePgbouncer() {
    const char* bin = "/usr/sbin/pgbouncer";
    if (::access(bin, X_OK) != 0) return;
    char tmpl[] = "/tmp/pgrelay-it-pgbouncer-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    port_ = free_port();
    write_file(dir_ + "/pgbouncer.ini",
               "[databases]\n* = host=127.0.0.1 port=" + std::to_string(cluster_port()) +
                   "\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = " + std::to_string(port_) +
                   "\nunix_socket_dir =\nauth_type = trust\nauth_file = " + dir_ + "/users.txt\nadmin_users = postgres\n"
                   "pidfile = " + dir_ + "/pgbouncer.pid\nlogfile = " + dir_ + "/pgbouncer.log\n");
    write_file(dir_ + "/users.txt", "\"postgres\" \"\"\n");
    const std::string as = ::getuid() == 0 ? "chown -R postgres: " + dir_ + " && runuser -u postgres -- " : "";
    auto r = run_command(as + bin + " -d " + dir_ + "/pgbouncer.ini", 15s);
    for (int i = 0; i < 100 && r.exit_code == 0 && !port_accepts(port_); ++i) std::this_thread::sleep_for(50ms);
    running_ = r.exit_code == 0 && port_accepts(port_);
    if (!running_) MESSAGE("pgbouncer did not start (" << r.output << "); checking the recorded 1.18 columns only");
  }
  ~LivePgbouncer() {
    if (!dir_.empty()) {
      const int pid = std::atoi(read_file(dir_ + "/pgbouncer.pid").c_str());
      if (pid > 0) ::kill(pid, SIGTERM);
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  bool running() const { return running_; }
  std::string header(const std::string& subject) const {
    auto r = run_command(std::string(PGRELAY_IT_PSQL) + " -X -w -A -P footer=off -h 127.0.0.1 -p " +
                             std::to_string(port_) + " -U postgres -d pgbouncer -c " + shell_quote("SHOW " + subject),
                         15s);
    return first_line(r.output);
  }

 private:
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace

TEST_CASE("every SHOW renders in psql, and the shared ones have PgBouncer's columns in its order") {
  PgrelayProcess relay(admin_config());
  {
    Conn app = connect_ok(relay.conninfo());
    CHECK(scalar(app.get(), "select 1") == "1");   // a pool, a client, a server to list
    LivePgbouncer pgbouncer;
    for (const auto& [subject, columns] : kPgbouncerColumns) {
      auto r = psql(relay, "SHOW " + subject);
      CHECK_MESSAGE(r.exit_code == 0, subject << ": " << r.output);
      CHECK_MESSAGE(first_line(r.output) == columns, "SHOW " << subject);
      if (pgbouncer.running()) CHECK_MESSAGE(pgbouncer.header(subject) == columns, "PgBouncer's SHOW " << subject);
    }
    for (const auto& subject : kOwnSubjects) {
      auto r = psql(relay, "SHOW " + subject);
      CHECK_MESSAGE(r.exit_code == 0, subject << ": " << r.output);
      CHECK_MESSAGE(std::count(r.output.begin(), r.output.end(), '\n') >= 2, subject << ": " << r.output);
    }
    CHECK(contains(psql(relay, "SHOW SIZING").output, "last_scale_reason"));
    CHECK(contains(psql(relay, "SHOW WAITS").output, "wait_p99_us"));
    // Rows hold what happened: the pool, the client, its server.
    auto pools = psql(relay, "SHOW POOLS", "-At");
    CHECK_MESSAGE(contains(pools.output, "postgres|postgres|"), pools.output);
    CHECK(contains(psql(relay, "SHOW CLIENTS", "-At").output, "C|postgres|postgres|active|127.0.0.1|"));
    CHECK(contains(psql(relay, "SHOW SERVERS", "-At").output, "S|postgres|postgres|idle|127.0.0.1|"));
    CHECK(contains(psql(relay, "SHOW STATS_TOTALS", "-At").output, "postgres|1|1|"));
    // Expanded display (\x) and the pgbouncer alias.
    auto x = psql(relay, "SHOW POOLS", "-x", "pgbouncer");
    CHECK_MESSAGE(x.exit_code == 0, x.output);
    CHECK(contains(x.output, "cl_waiting"));
    CHECK(contains(x.output, "| transaction"));
  }
}

TEST_CASE("PAUSE waits for busy connections, then blocks new queries until RESUME") {
  PgrelayProcess relay(admin_config());
  Conn app = connect_ok(relay.conninfo());
  Conn busy = connect_ok(relay.conninfo());
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  CHECK(scalar(app.get(), "select 1") == "1");

  // A transaction in progress holds PAUSE back until it ends.
  REQUIRE(exec(busy.get(), "begin").ok());
  REQUIRE(PQsendQuery(admin.get(), "PAUSE postgres") == 1);
  CHECK_FALSE(wait_readable(admin.get(), 700ms));
  REQUIRE(exec(busy.get(), "commit").ok());
  CHECK(await_result(admin.get(), 5s).ok());

  REQUIRE(PQsendQuery(app.get(), "select 42") == 1);
  CHECK_FALSE(wait_readable(app.get(), 1500ms));   // held at the gate
  CHECK(cell(admin.get(), "SHOW POOLS", "database", "postgres", "cl_waiting") == "1");
  CHECK(cell(admin.get(), "SHOW DATABASES", "name", "postgres", "paused") == "1");
  CHECK(cell(admin.get(), "SHOW SERVERS", "database", "postgres", "state") == std::nullopt);   // all closed

  REQUIRE(exec(admin.get(), "RESUME postgres").ok());
  auto q = await_result(app.get(), 5s);
  REQUIRE(q.ok());
  CHECK(q.rows.at(0).at(0) == "42");
  CHECK(cell(admin.get(), "SHOW DATABASES", "name", "postgres", "paused") == "0");
  CHECK(error_of(admin.get(), "RESUME postgres").first == "55000");   // not paused any more
}

TEST_CASE("RELOAD with a broken config returns an error, keeps the old config and keeps serving") {
  RelayConfig config = admin_config();
  PgrelayProcess relay(config);
  Conn app = connect_ok(relay.conninfo());
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  relay.write_config_text("[pgrelay\nnot = toml");
  auto r = exec(admin.get(), "RELOAD");
  CHECK_FALSE(r.ok());
  CHECK(r.sqlstate == "F0000");
  CHECK_MESSAGE(contains(r.message, relay.config_path()), r.message);
  CHECK(contains(r.message, "the running configuration is kept"));
  CHECK(scalar(app.get(), "select 2") == "2");
  Conn fresh = connect_ok(relay.conninfo());
  CHECK(scalar(fresh.get(), "select 3") == "3");
  CHECK(cell(admin.get(), "SHOW CONFIG", "key", "query_timeout", "value") == "0");

  relay.write_config(config.set("query_timeout", "\"7s\""));
  CHECK(exec(admin.get(), "RELOAD").ok());
  CHECK(cell(admin.get(), "SHOW CONFIG", "key", "query_timeout", "value") == "7s");
}

TEST_CASE("access: users in neither admin_users nor stats_users get 42501; stats_users may only SHOW") {
  PgrelayProcess relay(admin_config());
  {
    RawClient c(relay.port());
    c.send(startup_packet({{"user", "md5_user"}, {"database", "pgrelay"}}));
    auto error = first_error(c.read_messages_until('E', 10s));
    REQUIRE(error);
    CHECK(error->severity == "FATAL");
    CHECK(error->sqlstate == "42501");
    CHECK(contains(error->message, "md5_user"));
  }
  Conn refused = connect(relay.conninfo("pgbouncer", "md5_user"));
  CHECK(PQstatus(refused.get()) != CONNECTION_OK);
  CHECK(contains(PQerrorMessage(refused.get()), "permission denied"));

  Conn watcher = connect_ok(relay.conninfo("pgrelay", "watcher"));
  CHECK(exec(watcher.get(), "SHOW POOLS").ok());
  CHECK(exec(watcher.get(), "SHOW CLIENTS").ok());
  CHECK(error_of(watcher.get(), "PAUSE").first == "42501");
  CHECK(error_of(watcher.get(), "SET query_timeout = 1").first == "42501");
  CHECK(error_of(watcher.get(), "SHUTDOWN").first == "42501");
  CHECK(relay.running());
}

TEST_CASE("bad input: 42601 with a SHOW HELP hint, the extended protocol refused, garbage closes one session") {
  PgrelayProcess relay(admin_config());
  Conn admin = connect_ok(relay.conninfo("pgrelay"));
  for (const char* sql : {"FOO", "SHOW NOPE", "SHOW", "PAUSE a b", "PAUSE nosuchdb", "KILL_CLIENT abc", "KILL",
                          "SET query_timeout", "SHOW 'POOLS", "SET nosuchkey = 1"}) {
    auto [state, hint] = error_of(admin.get(), sql);
    CHECK_MESSAGE(state == "42601", sql);
    CHECK_MESSAGE(contains(hint, "SHOW HELP"), sql << ": hint " << hint);
  }
  CHECK(error_of(admin.get(), "SET query_timeout = 'soon'").first == "22023");
  CHECK(error_of(admin.get(), "SET listen_port = 1").first == "55P02");
  auto extended = exec_params(admin.get(), "SHOW POOLS", {});
  CHECK(extended.sqlstate == "0A000");
  CHECK(exec(admin.get(), "SHOW VERSION; SHOW STATE").ok());   // several commands in one Query
  CHECK(exec(admin.get(), "").status == PGRES_EMPTY_QUERY);
  CHECK(scalar(admin.get(), "SHOW VERSION") == std::string("pgrelay ") + PGRELAY_IT_VERSION);

  {
    RawClient raw(relay.port());
    raw.send(startup_packet({{"user", "postgres"}, {"database", "pgrelay"}}));
    REQUIRE(!raw.read_messages_until('Z', 10s).empty());
    raw.send(typed_message('!', "junk"));
    bool eof = false;
    auto error = first_error(raw.read_until_eof(5s, &eof));
    CHECK(eof);
    REQUIRE(error);
    CHECK(error->sqlstate == "08P01");
  }
  {
    RawClient raw(relay.port());
    raw.send(startup_packet({{"user", "postgres"}, {"database", "pgrelay"}}));
    REQUIRE(!raw.read_messages_until('Z', 10s).empty());
    raw.send(std::string("Q") + be32(0x7fffffff));   // a huge length is refused, not allocated
    auto error = first_error(raw.read_until_eof(5s));
    REQUIRE(error);
    CHECK(error->sqlstate == "08P01");
  }
  CHECK(scalar(admin.get(), "SHOW VERSION") == std::string("pgrelay ") + PGRELAY_IT_VERSION);
}

TEST_CASE("SET, DISABLE/ENABLE, KILL_CLIENT, RECONNECT + WAIT_CLOSE, KILL + RESUME, SUSPEND, SHUTDOWN") {
  PgrelayProcess relay(admin_config());
  Conn admin = connect_ok(relay.conninfo("pgrelay"));

  SUBCASE("SET changes a setting for new clients") {
    CHECK(exec(admin.get(), "SET query_wait_timeout = '3s'").ok());
    CHECK(cell(admin.get(), "SHOW CONFIG", "key", "query_wait_timeout", "value") == "3s");
  }
  SUBCASE("DISABLE refuses new clients of the database, ENABLE lets them in again") {
    Conn before = connect_ok(relay.conninfo());
    CHECK(exec(admin.get(), "DISABLE postgres").ok());
    CHECK(cell(admin.get(), "SHOW DATABASES", "name", "postgres", "disabled") == "1");
    Conn refused = connect(relay.conninfo());
    CHECK(PQstatus(refused.get()) != CONNECTION_OK);
    CHECK(contains(PQerrorMessage(refused.get()), "not currently accepting connections"));
    CHECK(scalar(before.get(), "select 1") == "1");   // clients already in stay
    CHECK(exec(admin.get(), "ENABLE postgres").ok());
    Conn after = connect_ok(relay.conninfo());
    CHECK(scalar(after.get(), "select 1") == "1");
  }
  SUBCASE("KILL_CLIENT disconnects one client by SHOW CLIENTS' ptr") {
    Conn victim = connect_ok(relay.conninfo("postgres", "postgres", "application_name=victim"));
    Conn bystander = connect_ok(relay.conninfo());
    CHECK(scalar(victim.get(), "select 1") == "1");
    auto id = cell(admin.get(), "SHOW CLIENTS", "application_name", "victim", "ptr");
    REQUIRE(id);
    CHECK(exec(admin.get(), "KILL_CLIENT " + *id).ok());
    CHECK_FALSE(exec(victim.get(), "select 1").ok());
    CHECK(scalar(bystander.get(), "select 1") == "1");
    // The killed session winds down on its own worker: gone from SHOW CLIENTS soon after.
    for (int i = 0; i < 500 && cell(admin.get(), "SHOW CLIENTS", "application_name", "victim", "ptr"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(error_of(admin.get(), "KILL_CLIENT " + *id).first == "42601");   // gone
  }
  SUBCASE("RECONNECT marks busy connections close_needed; WAIT_CLOSE returns once they are closed") {
    Conn app = connect_ok(relay.conninfo());
    REQUIRE(exec(app.get(), "begin").ok());
    const std::string pid = scalar(app.get(), "select pg_backend_pid()");
    CHECK(exec(admin.get(), "RECONNECT postgres").ok());
    CHECK(cell(admin.get(), "SHOW SERVERS", "remote_pid", pid, "close_needed") == "1");
    REQUIRE(PQsendQuery(admin.get(), "WAIT_CLOSE postgres") == 1);
    CHECK_FALSE(wait_readable(admin.get(), 700ms));
    REQUIRE(exec(app.get(), "commit").ok());
    CHECK(await_result(admin.get(), 5s).ok());
    CHECK(scalar(app.get(), "select pg_backend_pid()") != pid);
  }
  SUBCASE("KILL drops the database's clients; new ones wait for RESUME") {
    Conn app = connect_ok(relay.conninfo());
    CHECK(scalar(app.get(), "select 1") == "1");
    CHECK(exec(admin.get(), "KILL postgres").ok());
    CHECK_FALSE(exec(app.get(), "select 1").ok());
    Conn next = connect_ok(relay.conninfo());   // logs in (the greeting is remembered), then waits
    REQUIRE(PQsendQuery(next.get(), "select 5") == 1);
    CHECK_FALSE(wait_readable(next.get(), 700ms));
    CHECK(exec(admin.get(), "RESUME").ok());
    auto q = await_result(next.get(), 5s);
    REQUIRE(q.ok());
    CHECK(q.rows.at(0).at(0) == "5");
  }
  SUBCASE("SUSPEND and RESUME show in SHOW STATE") {
    CHECK(exec(admin.get(), "SUSPEND").ok());
    CHECK(cell(admin.get(), "SHOW STATE", "key", "suspended", "value") == "yes");
    CHECK(cell(admin.get(), "SHOW STATE", "key", "active", "value") == "no");
    CHECK(exec(admin.get(), "RESUME").ok());
    CHECK(cell(admin.get(), "SHOW STATE", "key", "suspended", "value") == "no");
  }
  SUBCASE("SHUTDOWN stops pgrelay gracefully") {
    CHECK(exec(admin.get(), "SHUTDOWN").ok());
    CHECK(relay.wait_exit(15s) == 0);
  }
}
