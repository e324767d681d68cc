// parse_config: defaults, a full file, every validation error (file:line: key), unknown keys,
// inheritance of pool settings, and "*" lookup.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <thread>
#include <utility>

#include "conf/loader.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using std::chrono::milliseconds;
using test::contains;
using test::ok_config;

std::string error_of(const std::string& toml) {
  auto c = parse_config(toml, "test.toml");
  REQUIRE_MESSAGE(!c.ok(), "expected an error for:\n" << toml);
  CHECK(c.error().sqlstate == "F0000");
  return c.error().message;
}

// The error names the file, the line and the dotted key, and says `fragment`.
void check_error(const std::string& toml, int line, const std::string& key,
                 const std::string& fragment) {
  const std::string msg = error_of(toml);
  const std::string where = "test.toml:" + std::to_string(line) + ": " + key + ": ";
  CHECK_MESSAGE(contains(msg, where), "want '" << where << "' in: " << msg);
  CHECK_MESSAGE(contains(msg, fragment), "want '" << fragment << "' in: " << msg);
}

TEST_CASE("an empty file gives the documented defaults") {
  const Config c = ok_config("");
  CHECK(c.source == "test.toml");
  CHECK(c.listen_addr == "127.0.0.1");
  CHECK(c.listen_port == 6432);
  CHECK(c.workers == 0);
  CHECK(c.busy_poll_us == 0);
  CHECK(c.log_level == LogLevel::kInfo);
  CHECK(c.max_client_conn == 1000);
  CHECK(c.client_login_timeout == milliseconds(60'000));
  CHECK(c.server_connect_timeout == milliseconds(15'000));
  CHECK(c.server_idle_timeout == milliseconds(600'000));
  CHECK(c.query_wait_timeout == milliseconds(120'000));
  CHECK(c.shutdown_timeout == milliseconds(30'000));
  CHECK(c.server_lifetime == milliseconds(3'600'000));
  CHECK(c.server_login_retry == milliseconds(5'000));
  CHECK(c.server_check_delay == milliseconds(30'000));
  CHECK(c.server_check_query == "select 1");
  CHECK(c.client_idle_timeout == milliseconds(0));
  CHECK(c.idle_transaction_timeout == milliseconds(0));
  CHECK(c.query_timeout == milliseconds(0));
  CHECK(c.max_message_size == 268435456u);
  CHECK(c.max_startup_packet_size == 10240u);
  CHECK(c.max_prepared_statements == 200);
  CHECK(c.pool.pool_mode == PoolMode::kSession);
  CHECK(c.pool.pool_size == 20);
  CHECK(c.pool.min_pool_size == 0);
  CHECK(c.pool.reserve_pool_size == 0);
  CHECK(c.reserve_pool_timeout == milliseconds(5'000));
  CHECK(c.pool.server_reset_query == "DISCARD ALL");
  CHECK(c.databases.empty());
}

TEST_CASE("a full file sets every key") {
  const Config c = ok_config(R"([pgrelay]
listen_addr = "0.0.0.0"
listen_port = 7432
workers = 4
busy_poll_us = 50
log_level = "debug"
max_client_conn = 5000
client_login_timeout = "250ms"
server_connect_timeout = 2.5
server_idle_timeout = 0
query_wait_timeout = "5min"
shutdown_timeout = "2h"
server_lifetime = "30min"
client_idle_timeout = 300
idle_transaction_timeout = "10s"
query_timeout = "1.5s"
max_message_size = "64MiB"
max_startup_packet_size = 4096
max_prepared_statements = 0
pool_mode = "statement"
pool_size = 30
min_pool_size = 5
server_reset_query = ""

[databases.appdb]
url = "postgresql://app:secret@10.0.0.5:5433/app_production"
pool_mode = "transaction"
pool_size = 50
min_pool_size = 1
server_reset_query = "RESET ALL"

[databases.reports]
host = "10.0.0.6"
port = 5434
dbname = "warehouse"
user = "reporting"
password = "pw"

[databases."*"]
host = "/var/run/postgresql"
)");
  CHECK(c.listen_addr == "0.0.0.0");
  CHECK(c.listen_port == 7432);
  CHECK(c.workers == 4);
  CHECK(c.effective_workers() == 4);
  CHECK(c.busy_poll_us == 50);
  CHECK(c.log_level == LogLevel::kDebug);
  CHECK(c.max_client_conn == 5000);
  CHECK(c.client_login_timeout == milliseconds(250));
  CHECK(c.server_connect_timeout == milliseconds(2'500));
  CHECK(c.max_prepared_statements == 0);
  CHECK(c.server_idle_timeout == milliseconds(0));
  CHECK(c.query_wait_timeout == milliseconds(300'000));
  CHECK(c.shutdown_timeout == milliseconds(7'200'000));
  CHECK(c.server_lifetime == milliseconds(1'800'000));
  CHECK(c.client_idle_timeout == milliseconds(300'000));
  CHECK(c.idle_transaction_timeout == milliseconds(10'000));
  CHECK(c.query_timeout == milliseconds(1'500));
  CHECK(c.max_message_size == 64u << 20);
  CHECK(c.max_startup_packet_size == 4096u);
  CHECK(c.pool.pool_mode == PoolMode::kStatement);
  CHECK(c.pool.pool_size == 30);
  CHECK(c.pool.min_pool_size == 5);
  CHECK(c.pool.server_reset_query.empty());
  REQUIRE(c.databases.size() == 3);

  const DatabaseEntry& app = c.databases.at("appdb");
  CHECK(app.name == "appdb");
  CHECK(app.host == "10.0.0.5");
  CHECK(app.port == 5433);
  CHECK(app.dbname == "app_production");
  CHECK(app.user == "app");
  CHECK(app.password == "secret");
  CHECK(app.pool.pool_mode == PoolMode::kTransaction);
  CHECK(app.pool.pool_size == 50);
  CHECK(app.pool.min_pool_size == 1);
  CHECK(app.pool.server_reset_query == "RESET ALL");

  const DatabaseEntry& rep = c.databases.at("reports");
  CHECK(rep.host == "10.0.0.6");
  CHECK(rep.port == 5434);
  CHECK(rep.dbname == "warehouse");
  CHECK(rep.user == "reporting");
  CHECK(rep.password == "pw");

  const DatabaseEntry& star = c.databases.at("*");
  CHECK(star.name == "*");
  CHECK(star.host == "/var/run/postgresql");
  CHECK(star.port == 5432);
  CHECK(star.dbname.empty());
  CHECK(star.user.empty());
}

TEST_CASE("listen_addr accepts what the listener can bind") {
  for (const std::string addr : {"0.0.0.0", "::", "::1", "fe80::1", "*", "localhost", "10.1.2.3"}) {
    CHECK(ok_config("[pgrelay]\nlisten_addr = \"" + addr + "\"").listen_addr == addr);
  }
}

TEST_CASE("durations accept integer seconds, float seconds and strings with units") {
  const Config c = ok_config(
      "[pgrelay]\nclient_login_timeout = 3\nserver_connect_timeout = 0.5\n"
      "query_wait_timeout = \"1.5s\"\nshutdown_timeout = \"1d\"\n");
  CHECK(c.client_login_timeout == milliseconds(3'000));
  CHECK(c.server_connect_timeout == milliseconds(500));
  CHECK(c.query_wait_timeout == milliseconds(1'500));
  CHECK(c.shutdown_timeout == milliseconds(86'400'000));
}

TEST_CASE("sizes accept bytes and 1024-based units") {
  CHECK(ok_config("[pgrelay]\nmax_message_size = \"64kB\"").max_message_size == 65536u);
  CHECK(ok_config("[pgrelay]\nmax_message_size = \"64KiB\"").max_message_size == 65536u);
  CHECK(ok_config("[pgrelay]\nmax_message_size = \"256MB\"").max_message_size == 256u << 20);
  CHECK(ok_config("[pgrelay]\nmax_message_size = \"1GB\"").max_message_size == 1u << 30);
  CHECK(ok_config("[pgrelay]\nmax_message_size = \"2048\"").max_message_size == 2048u);
  CHECK(ok_config("[pgrelay]\nmax_message_size = \"2048B\"").max_message_size == 2048u);
  CHECK(ok_config("[pgrelay]\nmax_message_size = 1024").max_message_size == 1024u);
}

TEST_CASE("every [pgrelay] value out of range is named by file, line and key") {
  check_error("[pgrelay]\nlisten_port = 0", 2, "pgrelay.listen_port",
              "expected an integer 1..65535, got 0");
  check_error("[pgrelay]\n\nlisten_port = 70000", 3, "pgrelay.listen_port", "got 70000");
  check_error("[pgrelay]\nlisten_port = \"6432\"", 2, "pgrelay.listen_port", "got \"6432\"");
  check_error("[pgrelay]\nlisten_port = 6432.0", 2, "pgrelay.listen_port", "got 6432.0");
  check_error("[pgrelay]\nlisten_addr = \"\"", 2, "pgrelay.listen_addr", "got \"\"");
  check_error("[pgrelay]\nlisten_addr = \"10.0.0.256\"", 2, "pgrelay.listen_addr",
              "expected an IPv4 or IPv6 address, \"*\" or \"localhost\", got \"10.0.0.256\"");
  check_error("[pgrelay]\nlisten_addr = \"db.example.com\"", 2, "pgrelay.listen_addr",
              "got \"db.example.com\"");
  check_error("[pgrelay]\nlisten_addr = 127", 2, "pgrelay.listen_addr",
              "expected a string, got 127");
  check_error("[pgrelay]\nworkers = 257", 2, "pgrelay.workers", "expected an integer 0..256");
  check_error("[pgrelay]\nworkers = -1", 2, "pgrelay.workers", "got -1");
  check_error("[pgrelay]\nbusy_poll_us = 1001", 2, "pgrelay.busy_poll_us", "expected an integer 0..1000");
  check_error("[pgrelay]\nlog_level = \"verbose\"", 2, "pgrelay.log_level",
              "expected one of \"debug\", \"info\", \"warning\" or \"error\", got \"verbose\"");
  check_error("[pgrelay]\nmax_client_conn = 0", 2, "pgrelay.max_client_conn",
              "expected an integer 1..1000000, got 0");
  check_error("[pgrelay]\nmax_client_conn = 1000001", 2, "pgrelay.max_client_conn",
              "got 1000001");
}

TEST_CASE("the query analyzer's keys: defaults, values and errors") {
  const Config d = ok_config("");
  CHECK(d.query_stats);
  CHECK(d.max_fingerprints == 5000);
  CHECK(d.query_text_length == 1024);
  CHECK(d.slow_query_threshold == milliseconds(1000));
  CHECK(d.slow_query_log.empty());
  CHECK_FALSE(d.log_parameters);
  CHECK(d.slow_query_log_rate == 100);
  CHECK(d.metrics_top_fingerprints == 20);
  const Config c = ok_config(
      "[pgrelay]\nquery_stats = false\nmax_fingerprints = 10\nquery_text_length = 200\n"
      "slow_query_threshold = \"250ms\"\nslow_query_log = \"stderr\"\nlog_parameters = true\nslow_query_log_rate = 5");
  CHECK_FALSE(c.query_stats);
  CHECK(c.max_fingerprints == 10);
  CHECK(c.query_text_length == 200);
  CHECK(c.slow_query_threshold == milliseconds(250));
  CHECK(c.slow_query_log == "stderr");
  CHECK(c.log_parameters);
  CHECK(c.slow_query_log_rate == 5);
  CHECK(ok_config("[pgrelay]\nslow_query_threshold = 0").slow_query_threshold == milliseconds(0));
  check_error("[pgrelay]\nquery_stats = \"yes\"", 2, "pgrelay.query_stats", "expected true or false, got \"yes\"");
  check_error("[pgrelay]\nlog_parameters = 1", 2, "pgrelay.log_parameters", "expected true or false, got 1");
  check_error("[pgrelay]\nmax_fingerprints = 0", 2, "pgrelay.max_fingerprints", "expected an integer 1..1000000");
  check_error("[pgrelay]\nquery_text_length = 8", 2, "pgrelay.query_text_length", "got 8");
  check_error("[pgrelay]\nslow_query_threshold = -1", 2, "pgrelay.slow_query_threshold", "non-negative");
  check_error("[pgrelay]\nmetrics_top_fingerprints = 1001", 2, "pgrelay.metrics_top_fingerprints", "expected an integer 0..1000");
}

TEST_CASE("duration errors are named by file, line and key") {
  check_error("[pgrelay]\nclient_login_timeout = 0", 2, "pgrelay.client_login_timeout",
              "expected a duration greater than 0, got 0");
  check_error("[pgrelay]\nserver_connect_timeout = \"0ms\"", 2,
              "pgrelay.server_connect_timeout", "greater than 0");
  check_error("[pgrelay]\nquery_wait_timeout = -5", 2, "pgrelay.query_wait_timeout",
              "expected a non-negative duration");
  check_error("[pgrelay]\nshutdown_timeout = \"5 parsecs\"", 2, "pgrelay.shutdown_timeout",
              "got \"5 parsecs\"");
  check_error("[pgrelay]\nserver_idle_timeout = true", 2, "pgrelay.server_idle_timeout",
              "expected a duration");
  check_error("[pgrelay]\nserver_idle_timeout = \"400d\"", 2, "pgrelay.server_idle_timeout",
              "at most 365 days");
  // 0 is meaningful for these two.
  const Config c = ok_config("[pgrelay]\nserver_idle_timeout = 0\nquery_wait_timeout = 0");
  CHECK(c.server_idle_timeout == milliseconds(0));
  CHECK(c.query_wait_timeout == milliseconds(0));
}

TEST_CASE("size errors are named by file, line and key") {
  check_error("[pgrelay]\nmax_message_size = 100", 2, "pgrelay.max_message_size",
              "expected a size of 1024..1073741824 bytes");
  check_error("[pgrelay]\nmax_message_size = \"2GB\"", 2, "pgrelay.max_message_size",
              "got \"2GB\"");
  check_error("[pgrelay]\nmax_message_size = \"256mb\"", 2, "pgrelay.max_message_size",
              "got \"256mb\"");
  check_error("[pgrelay]\nmax_message_size = -1", 2, "pgrelay.max_message_size", "got -1");
  check_error("[pgrelay]\nmax_message_size = \"99999999999999999999999GB\"", 2,
              "pgrelay.max_message_size", "expected a size");
  check_error("[pgrelay]\nmax_startup_packet_size = \"2MB\"", 2,
              "pgrelay.max_startup_packet_size", "1024..1048576");
}

TEST_CASE("pool setting errors are named by file, line and key") {
  check_error("[pgrelay]\npool_mode = \"sesion\"", 2, "pgrelay.pool_mode",
              "expected one of \"session\", \"transaction\" or \"statement\", got \"sesion\"");
  check_error("[pgrelay]\npool_size = 0", 2, "pgrelay.pool_size",
              "expected an integer 1..10000, got 0");
  check_error("[pgrelay]\npool_size = 10001", 2, "pgrelay.pool_size", "got 10001");
  check_error("[pgrelay]\nmin_pool_size = -1", 2, "pgrelay.min_pool_size",
              "expected an integer 0..10000");
  check_error("[pgrelay]\nserver_reset_query = 5", 2, "pgrelay.server_reset_query",
              "expected a string, got 5");
}

TEST_CASE("min_pool_size greater than pool_size is an error") {
  check_error("[pgrelay]\npool_size = 10\nmin_pool_size = 11", 3, "pgrelay.min_pool_size",
              "expected 0..pool_size (10), got 11");
  // Against the default pool_size (20).
  check_error("[pgrelay]\nmin_pool_size = 21", 2, "pgrelay.min_pool_size", "got 21");
  check_error("[databases.a]\npool_size = 4\nmin_pool_size = 5", 3,
              "databases.a.min_pool_size", "expected 0..pool_size (4), got 5");
  // A database that sets neither is not blamed for the [pgrelay] mistake.
  const std::string msg = error_of("[pgrelay]\nmin_pool_size = 30\n[databases.a]\nhost = \"h\"");
  CHECK(contains(msg, "test.toml:2: pgrelay.min_pool_size"));
  CHECK_FALSE(contains(msg, "databases.a"));
  // Equal is fine.
  CHECK(ok_config("[pgrelay]\npool_size = 7\nmin_pool_size = 7").pool.min_pool_size == 7);
}

TEST_CASE("a database pool_size below the inherited min_pool_size is an error") {
  check_error("[pgrelay]\npool_size = 20\nmin_pool_size = 10\n\n[databases.a]\npool_size = 5",
              6, "databases.a.pool_size", "expected at least min_pool_size (10 from [pgrelay]), got 5");
  check_error("[pgrelay]\npool_size = 5\n\n[databases.a]\nmin_pool_size = 6", 5,
              "databases.a.min_pool_size", "(5 from [pgrelay]), got 6");
}

TEST_CASE("database entry errors are named by file, line and key") {
  check_error("[databases.a]\nhost = \"\"", 2, "databases.a.host",
              "expected a host name, IP address or socket directory, got \"\"");
  check_error("[databases.a]\nport = 0", 2, "databases.a.port",
              "expected an integer 1..65535, got 0");
  check_error("[databases.a]\ndbname = 5", 2, "databases.a.dbname", "expected a string, got 5");
  check_error("x = 1\n[databases.\"\"]\nhost = \"h\"", 2, "databases.\"\"",
              "expected a non-empty database name");
  check_error("[databases]\na = 5", 2, "databases.a", "expected a table");
  check_error("pgrelay = 5", 1, "pgrelay", "expected a table, got 5");
  check_error("databases = \"x\"", 1, "databases", "expected a table");
  check_error("[databases.\"my.db\"]\nport = -3", 2, "databases.\"my.db\".port", "got -3");
}

TEST_CASE("a password is never echoed in an error") {
  const std::string msg = error_of("[databases.a]\npassword = 12345");
  CHECK(contains(msg, "test.toml:2: databases.a.password: expected a string"));
  CHECK_FALSE(contains(msg, "12345"));

  const std::string url = error_of("[databases.a]\nurl = \"postgresql://u:hunter2@h:abc/db\"");
  CHECK(contains(url, "test.toml:2: databases.a.url: "));
  CHECK(contains(url, "port 'abc' is not a number"));
  CHECK(contains(url, "u:***@h"));
  CHECK_FALSE(contains(url, "hunter2"));
}

TEST_CASE("url and fields for the same part conflict") {
  const std::string base = "[databases.a]\nurl = \"postgresql://u:p@h:5433/db\"\n";
  check_error(base + "host = \"other\"", 3, "databases.a.host",
              "expected either url or host, not both");
  check_error(base + "port = 5432", 3, "databases.a.port", "expected either url or port");
  check_error(base + "dbname = \"x\"", 3, "databases.a.dbname", "expected either url or dbname");
  check_error(base + "user = \"x\"", 3, "databases.a.user", "expected either url or user");
  check_error(base + "password = \"x\"", 3, "databases.a.password",
              "expected either url or password");
  check_error("[databases.a]\nurl = \"postgresql://h/db?sslrootcert=/ca.pem\"", 2, "databases.a.url",
              "expected a URL whose ?parameters pgrelay takes, got ?sslrootcert= is not taken in a URL here: use "
              "server_tls_ca_file in [pgrelay]");
  check_error("[databases.a]\nurl = \"postgresql://h/db?sslmode=verify-ca\"", 2, "databases.a.url",
              "expected server_tls_ca_file in [pgrelay] with ?sslmode=verify-ca");
  check_error("[databases.a]\nurl = \"postgresql://h/db?sslmode=require\"\nserver_tls_sslmode = \"disable\"", 3,
              "databases.a.server_tls_sslmode", "expected either url's ?sslmode= or server_tls_sslmode");
  const Config tls = ok_config("[databases.a]\nurl = \"postgresql://h/db?sslmode=require\"\n"
                               "[databases.b]\nurl = \"postgresql://h/db?sslmode=disable&\"\n");
  CHECK(tls.databases.at("a").server_tls_sslmode == ServerTlsMode::kRequire);
  CHECK(tls.databases.at("b").server_tls_sslmode == ServerTlsMode::kDisable);
  check_error("[databases.a]\nurl = 5", 2, "databases.a.url", "expected a string");
}

TEST_CASE("parts a url leaves out may come from fields") {
  const Config c = ok_config(
      "[databases.a]\nurl = \"postgresql://u@h/db\"\npassword = \"from-field\"\n"
      "[databases.b]\nurl = \"postgresql://h\"\ndbname = \"real\"\nuser = \"bob\"\n");
  CHECK(c.databases.at("a").user == "u");
  CHECK(c.databases.at("a").password == "from-field");
  CHECK(c.databases.at("a").dbname == "db");
  CHECK(c.databases.at("b").dbname == "real");
  CHECK(c.databases.at("b").user == "bob");
  CHECK(c.databases.at("b").host == "h");
}

TEST_CASE("the \"*\" fallback may not name a dbname") {
  check_error("[databases.\"*\"]\nhost = \"h\"\ndbname = \"x\"", 3, "databases.\"*\".dbname",
              "expected no dbname");
  check_error("[databases.\"*\"]\nurl = \"postgresql://h/x\"", 2, "databases.\"*\".url",
              "expected no dbname");
}

TEST_CASE("unknown keys are errors, with a suggestion and the valid keys") {
  const std::string msg = error_of("[pgrelay]\nlisten_port = 6432\nlisten_prot = 7000");
  CHECK(contains(msg, "test.toml:3: pgrelay.listen_prot: unknown key"));
  CHECK(contains(msg, "did you mean listen_port?"));
  CHECK(contains(msg, "valid keys: listen_addr, listen_port"));

  check_error("[databases.a]\nhost = \"h\"\nhostname = \"h\"", 3, "databases.a.hostname",
              "unknown key");
  const std::string far = error_of("[pgrelay]\ncompletely_different = 1");
  CHECK(contains(far, "unknown key"));
  CHECK_FALSE(contains(far, "did you mean"));
}

TEST_CASE("unknown sections and top-level keys are errors") {
  check_error("[pgrelays]\nlisten_port = 1", 1, "pgrelays", "unknown section");
  check_error("\nlisten_port = 6432", 2, "listen_port", "unknown key");
  check_error("[pgrelay]\n[pgrelay.redis]\nurl = \"x\"", 2, "pgrelay.redis", "unknown key");
  check_error("[cache]\n[cache.redis]\nurl = \"x\"", 2, "cache.redis", "unknown key");
}

TEST_CASE("TOML syntax errors give file:line:column and toml++'s description") {
  auto c = parse_config("[pgrelay]\nlisten_port = = 5", "syntax.toml");
  REQUIRE_FALSE(c.ok());
  CHECK(contains(c.error().message, "syntax.toml:2:"));
  // The column is there too: "syntax.toml:2:<col>: ..."
  const std::string after = c.error().message.substr(std::string("syntax.toml:2:").size());
  REQUIRE_FALSE(after.empty());
  CHECK(std::isdigit(static_cast<unsigned char>(after[0])));
  CHECK(after.size() > 4);

  auto dup = parse_config("[pgrelay]\nworkers = 1\nworkers = 2", "dup.toml");
  REQUIRE_FALSE(dup.ok());
  CHECK(contains(dup.error().message, "dup.toml:3:"));
}

TEST_CASE("every error in a file is reported at once, in line order") {
  const std::string msg =
      error_of("[databases.z]\nport = 0\n\n[pgrelay]\nworkers = 999\nlisten_prot = 1\n");
  const size_t port = msg.find("test.toml:2: databases.z.port");
  const size_t workers = msg.find("test.toml:5: pgrelay.workers");
  const size_t unknown = msg.find("test.toml:6: pgrelay.listen_prot");
  REQUIRE(port != std::string::npos);
  REQUIRE(workers != std::string::npos);
  REQUIRE(unknown != std::string::npos);
  CHECK(port < workers);
  CHECK(workers < unknown);
  CHECK(std::count(msg.begin(), msg.end(), '\n') == 2);
}

TEST_CASE("databases inherit [pgrelay] pool settings whatever the table order") {
  const std::string databases_first = R"([databases.a]
host = "h"
pool_size = 50

[databases.b]
host = "h"
pool_mode = "statement"
server_reset_query = ""

[pgrelay]
pool_mode = "transaction"
pool_size = 40
min_pool_size = 3
server_reset_query = "RESET ALL"
)";
  const Config c = ok_config(databases_first);
  const PoolSettings& a = c.databases.at("a").pool;
  CHECK(a.pool_mode == PoolMode::kTransaction);
  CHECK(a.pool_size == 50);
  CHECK(a.min_pool_size == 3);
  CHECK(a.server_reset_query == "RESET ALL");
  const PoolSettings& b = c.databases.at("b").pool;
  CHECK(b.pool_mode == PoolMode::kStatement);
  CHECK(b.pool_size == 40);
  CHECK(b.min_pool_size == 3);
  CHECK(b.server_reset_query.empty());
  // The override of one database does not leak into the defaults.
  CHECK(c.pool.pool_size == 40);
  CHECK(c.pool.pool_mode == PoolMode::kTransaction);
}

TEST_CASE("dotted keys and inline tables are the same TOML") {
  const Config c = ok_config(
      "pgrelay.listen_port = 7000\ndatabases.a = { host = \"h\", port = 6000 }\n");
  CHECK(c.listen_port == 7000);
  CHECK(c.databases.at("a").port == 6000);
  check_error("databases.a = { host = \"h\", prot = 6000 }", 1, "databases.a.prot",
              "unknown key");
}

TEST_CASE("find_database: exact match, else \"*\", else nullptr") {
  Config c = ok_config("[databases.app]\nhost = \"a\"\n[databases.\"*\"]\nhost = \"fallback\"");
  const DatabaseEntry* app = c.find_database("app");
  REQUIRE(app != nullptr);
  CHECK(app->host == "a");
  const DatabaseEntry* other = c.find_database("other");
  REQUIRE(other != nullptr);
  CHECK(other->name == "*");
  CHECK(other->host == "fallback");

  const Config no_star = ok_config("[databases.app]\nhost = \"a\"");
  CHECK(no_star.find_database("other") == nullptr);
  CHECK(no_star.find_database("app") != nullptr);
  CHECK(no_star.find_database("") == nullptr);
}

TEST_CASE("effective_workers is workers, else half the core count, never 0") {
  Config c;
  c.workers = 0;
  CHECK(c.effective_workers() >= 1);
  const unsigned cores = std::thread::hardware_concurrency();
  if (cores >= 2) CHECK(c.effective_workers() == static_cast<int>(cores / 2));
  if (cores < 2) CHECK(c.effective_workers() == 1);
  c.workers = 7;
  CHECK(c.effective_workers() == 7);
}

TEST_CASE("enum names round-trip through to_string") {
  CHECK(std::string(to_string(PoolMode::kSession)) == "session");
  CHECK(std::string(to_string(PoolMode::kTransaction)) == "transaction");
  CHECK(std::string(to_string(PoolMode::kStatement)) == "statement");
  CHECK(std::string(to_string(LogLevel::kDebug)) == "debug");
  CHECK(std::string(to_string(LogLevel::kInfo)) == "info");
  CHECK(std::string(to_string(LogLevel::kWarning)) == "warning");
  CHECK(std::string(to_string(LogLevel::kError)) == "error");
}

TEST_CASE("dynamic sizing and connection limit keys") {
  const auto c = ok_config(
      "[pgrelay]\ndefault_pool_size = 10\nmax_pool_size = 15\nmax_db_connections = 40\n"
      "max_user_connections = 30\nscale_up_threshold = 0.9\nscale_down_threshold = 0.2\n"
      "scale_down_delay = \"45s\"\n[databases.a]\nhost = \"h\"\nmax_db_connections = 5\nscale_up_threshold = 1\n");
  CHECK(c.pool.pool_size == 10);
  CHECK(c.pool.effective_max_pool_size() == 15);
  CHECK(c.pool.max_db_connections == 40);
  CHECK(c.max_user_connections == 30);
  CHECK(c.pool.scale_up_threshold == doctest::Approx(0.9));
  CHECK(c.pool.scale_down_threshold == doctest::Approx(0.2));
  CHECK(c.pool.scale_down_delay == std::chrono::seconds(45));
  const auto& a = c.databases.at("a").pool;
  CHECK(a.max_db_connections == 5);
  CHECK(a.scale_up_threshold == doctest::Approx(1.0));
  CHECK(a.effective_max_pool_size() == 15);   // inherited
  // Defaults: max_pool_size follows pool_size, no global limits.
  const auto d = ok_config("[pgrelay]\npool_size = 7");
  CHECK(d.pool.effective_max_pool_size() == 7);
  CHECK(d.pool.max_db_connections == 0);
  CHECK(d.max_user_connections == 0);
  CHECK(d.pool.scale_down_delay == std::chrono::seconds(30));
  CHECK(d.pool.session_state == SessionStatePolicy::kPin);
  CHECK(ok_config("[databases.a]\nsession_state = \"reject\"").databases.at("a").pool.session_state ==
        SessionStatePolicy::kReject);
  check_error("[pgrelay]\nsession_state = \"pinned\"", 2, "pgrelay.session_state",
              "expected one of \"pin\" or \"reject\", got \"pinned\"");
  CHECK(std::string(to_string(SessionStatePolicy::kReject)) == "reject");
}

TEST_CASE("dynamic sizing errors name the key and the bound") {
  check_error("[pgrelay]\npool_size = 10\nmax_pool_size = 5", 3, "pgrelay.max_pool_size",
              "expected 0 (= pool_size) or at least pool_size (10), got 5");
  check_error("[pgrelay]\nmax_pool_size = 10\n[databases.a]\npool_size = 12", 4, "databases.a.pool_size",
              "expected at most max_pool_size (10 from [pgrelay]), got 12");
  check_error("[pgrelay]\npool_size = 5\ndefault_pool_size = 5", 3, "pgrelay.default_pool_size",
              "expected either pool_size or default_pool_size, got both");
  check_error("[pgrelay]\nscale_up_threshold = 1.5", 2, "pgrelay.scale_up_threshold",
              "expected a number 0.01..1, got 1.5");
  check_error("[pgrelay]\nscale_down_threshold = \"low\"", 2, "pgrelay.scale_down_threshold",
              "expected a number 0..0.99, got \"low\"");
  check_error("[pgrelay]\nscale_up_threshold = 0.5\nscale_down_threshold = 0.6", 3,
              "pgrelay.scale_down_threshold", "expected less than scale_up_threshold (0.5), got 0.6");
  check_error("[pgrelay]\nscale_down_threshold = 0.6\n[databases.a]\nscale_up_threshold = 0.5", 4,
              "databases.a.scale_up_threshold", "expected more than scale_down_threshold (0.6 from [pgrelay]), got 0.5");
  check_error("[pgrelay]\nmax_user_connections = -1", 2, "pgrelay.max_user_connections", "expected an integer 0..1000000");
  check_error("[databases.a]\nmax_db_connections = \"x\"", 2, "databases.a.max_db_connections", "got \"x\"");
  check_error("[databases.a]\ndefault_pool_size = 3", 2, "databases.a.default_pool_size", "unknown key");
}

}  // namespace
}  // namespace pgrelay::conf
