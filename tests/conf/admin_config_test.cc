// The admin console and metrics keys (admin_databases, metrics_listen), and SHOW CONFIG / SET.
#include <doctest/doctest.h>

#include "conf/loader.h"
#include "conf/runtime_settings.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;
using test::error_of;
using test::ok_config;

std::string find_key_value(const std::vector<SettingRow>& rows, const std::string& key) {
  for (const auto& r : rows)
    if (r.key == key) return r.value;
  return "(none)";
}

}  // namespace

TEST_CASE("admin and metrics defaults: pgrelay and pgbouncer consoles, metrics on 127.0.0.1:9930") {
  const Config c = ok_config("");
  CHECK(c.admin_databases == std::vector<std::string>{"pgrelay", "pgbouncer"});
  CHECK(c.is_admin_database("pgrelay"));
  CHECK(c.is_admin_database("pgbouncer"));
  CHECK_FALSE(c.is_admin_database("postgres"));
  CHECK(c.metrics_listen == "127.0.0.1:9930");
  CHECK(c.metrics_addr == "127.0.0.1");
  CHECK(c.metrics_port == 9930);
}

TEST_CASE("metrics_listen: host:port, [v6]:port, * and localhost, or \"\" for none") {
  CHECK(ok_config("[pgrelay]\nmetrics_listen = \"0.0.0.0:9100\"").metrics_port == 9100);
  const Config v6 = ok_config("[pgrelay]\nmetrics_listen = \"[::1]:9931\"");
  CHECK(v6.metrics_addr == "::1");
  CHECK(v6.metrics_port == 9931);
  CHECK(ok_config("[pgrelay]\nmetrics_listen = \"*:9930\"").metrics_addr == "0.0.0.0");
  CHECK(ok_config("[pgrelay]\nmetrics_listen = \"localhost:9930\"").metrics_addr == "127.0.0.1");
  const Config off = ok_config("[pgrelay]\nmetrics_listen = \"\"");
  CHECK(off.metrics_port == 0);
  CHECK(off.metrics_listen.empty());
}

TEST_CASE("metrics_listen errors name the line and key") {
  CHECK(contains(error_of("[pgrelay]\nmetrics_listen = \"9930\""), "test.toml:2: pgrelay.metrics_listen: expected \"host:port\""));
  CHECK(contains(error_of("[pgrelay]\nmetrics_listen = \"127.0.0.1:0\""), "expected a port 1..65535"));
  CHECK(contains(error_of("[pgrelay]\nmetrics_listen = \"127.0.0.1:99999\""), "expected a port 1..65535"));
  CHECK(contains(error_of("[pgrelay]\nmetrics_listen = \"example.com:9930\""), "expected an IPv4 or IPv6 address"));
  CHECK(contains(error_of("[pgrelay]\nmetrics_listen = \"[::1:9930\""), "expected \"host:port\""));
  CHECK(contains(error_of("[pgrelay]\nmetrics_listen = 9930"), "pgrelay.metrics_listen"));
}

TEST_CASE("admin_databases: a list (or one name); may be empty; a [databases] table may not shadow it") {
  CHECK(ok_config("[pgrelay]\nadmin_databases = \"console\"").admin_databases == std::vector<std::string>{"console"});
  CHECK(ok_config("[pgrelay]\nadmin_databases = []").admin_databases.empty());
  const std::string shadow = error_of("[databases.pgbouncer]\nhost = \"db\"\n");
  CHECK(contains(shadow, "databases.pgbouncer"));
  CHECK(contains(shadow, "admin console"));
  // Renaming the console frees the name.
  CHECK(ok_config("[pgrelay]\nadmin_databases = [\"console\"]\n[databases.pgbouncer]\nhost = \"db\"\n")
            .databases.count("pgbouncer") == 1);
}

TEST_CASE("setting_rows: every [pgrelay] key once, alphabetical, value and default as TOML writes them") {
  const Config c = ok_config("[pgrelay]\nquery_timeout = \"2500ms\"\npool_mode = \"transaction\"\nadmin_users = [\"a\", \"b\"]\n");
  const auto rows = setting_rows(c);
  REQUIRE(rows.size() > 40);
  for (size_t i = 1; i < rows.size(); ++i) CHECK(rows[i - 1].key < rows[i].key);
  auto find = [&](const std::string& key) {
    for (const auto& r : rows)
      if (r.key == key) return r;
    FAIL("no row " << key);
    return SettingRow{};
  };
  CHECK(find("query_timeout").value == "2500ms");
  CHECK(find("query_timeout").default_value == "0");
  CHECK(find("query_timeout").changeable);
  CHECK(find("pool_mode").value == "transaction");
  CHECK(find("pool_mode").default_value == "session");
  CHECK_FALSE(find("pool_mode").changeable);
  CHECK(find("listen_port").value == "6432");
  CHECK_FALSE(find("listen_port").changeable);
  CHECK(find("admin_users").value == "a, b");
  CHECK(find("server_lifetime").value == "1h");
  CHECK(find("client_login_timeout").value == "1min");
  CHECK(find("metrics_listen").value == "127.0.0.1:9930");
  CHECK(find("client_tls_sslmode").value == "prefer");
  CHECK(find("client_tls_protocols").value == "secure");
  CHECK(find("server_tls_sslmode").value == "disable");
  CHECK(find("server_tls_ciphers").value == "HIGH:MEDIUM:+3DES:!aNULL");
  CHECK_FALSE(find("client_tls_cert_file").changeable);
  CHECK(find("cache.redis_lease").value == "300ms");
  CHECK_FALSE(find("cache.redis_lease").changeable);
  CHECK(find_key_value(setting_rows(ok_config("[cache]\nredis_lease = \"1s\"\n")), "cache.redis_lease") == "1s");
}

TEST_CASE("format_duration") {
  CHECK(format_duration(Duration(0)) == "0");
  CHECK(format_duration(Duration(250)) == "250ms");
  CHECK(format_duration(Duration(1500)) == "1500ms");
  CHECK(format_duration(Duration(30'000)) == "30s");
  CHECK(format_duration(Duration(120'000)) == "2min");
  CHECK(format_duration(Duration(7'200'000)) == "2h");
}

TEST_CASE("apply_setting: validated as in the file, one key changed, others refused by name") {
  const Config c = ok_config("[pgrelay]\nmax_client_conn = 10\n");
  auto set = apply_setting(c, "query_timeout", "\"5s\"");
  REQUIRE(set.ok());
  CHECK(set->query_timeout == Duration(5'000));
  CHECK(set->max_client_conn == 10);   // the rest is kept
  auto level = apply_setting(c, "log_level", "\"debug\"");
  REQUIRE(level.ok());
  CHECK(level->log_level == LogLevel::kDebug);
  CHECK(apply_setting(c, "max_client_conn", "500")->max_client_conn == 500);

  auto bad = apply_setting(c, "query_timeout", "\"soon\"");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().sqlstate == "22023");
  CHECK(contains(bad.error().message, "invalid value for \"query_timeout\": expected a duration"));
  auto range = apply_setting(c, "max_client_conn", "0");
  REQUIRE_FALSE(range.ok());
  CHECK(contains(range.error().message, "expected an integer"));
  auto fixed = apply_setting(c, "listen_port", "7000");
  REQUIRE_FALSE(fixed.ok());
  CHECK(fixed.error().sqlstate == "55P02");
  CHECK(contains(fixed.error().message, "SET can change: "));
  CHECK(contains(fixed.error().message, "query_timeout"));
  auto unknown = apply_setting(c, "no_such_key", "1");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().sqlstate == "42601");
  // A value that smuggles another key in is still one value to the loader.
  CHECK_FALSE(apply_setting(c, "query_timeout", "1\nlisten_port = 7000").ok());
}

}  // namespace pgrelay::conf
