// Environment overrides (DATABASE_URL, PGRELAY_LISTEN, PGRELAY_CONFIG), loading files, and the
// shipped example file.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "conf/loader.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using std::chrono::milliseconds;
using test::contains;
using test::ok_config;

// A scratch file that removes itself.
struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& text) {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("pgrelay_conf_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
            ".toml");
    std::ofstream(path) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

TEST_CASE("DATABASE_URL adds the database and a \"*\" fallback") {
  Environment env;
  env.database_url = "postgresql://app:s3cret@db.internal:5433/app_production";
  auto r = apply_environment(Config{}, env);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  REQUIRE(r->databases.size() == 2);
  const DatabaseEntry& e = r->databases.at("app_production");
  CHECK(e.name == "app_production");
  CHECK(e.host == "db.internal");
  CHECK(e.port == 5433);
  CHECK(e.dbname == "app_production");
  CHECK(e.user == "app");
  CHECK(e.password == "s3cret");
  const DatabaseEntry& star = r->databases.at("*");
  CHECK(star.host == "db.internal");
  CHECK(star.port == 5433);
  CHECK(star.user.empty());
  CHECK(star.dbname.empty());
  CHECK(star.password == "s3cret");
}

TEST_CASE("DATABASE_URL keeps a configured \"*\" and the replaced entry's pool overrides") {
  const Config base = ok_config(R"([pgrelay]
pool_size = 30
[databases.app]
host = "old"
pool_size = 50
[databases."*"]
host = "configured-fallback"
)");
  Environment env;
  env.database_url = "postgres://u@new:6000/app";
  auto r = apply_environment(base, env);
  REQUIRE(r.ok());
  const DatabaseEntry& app = r->databases.at("app");
  CHECK(app.host == "new");
  CHECK(app.port == 6000);
  CHECK(app.user == "u");
  CHECK(app.pool.pool_size == 50);
  CHECK(r->databases.at("*").host == "configured-fallback");

  env.database_url = "postgres://u@new:6000/fresh";
  auto fresh = apply_environment(base, env);
  REQUIRE(fresh.ok());
  CHECK(fresh->databases.at("fresh").pool.pool_size == 30);
}

TEST_CASE("DATABASE_URL errors name the variable") {
  Environment env;
  env.database_url = "postgresql://h:abc/db";
  auto bad_port = apply_environment(Config{}, env);
  REQUIRE_FALSE(bad_port.ok());
  CHECK(bad_port.error().message == "DATABASE_URL: port 'abc' is not a number");

  env.database_url = "postgresql://u:p@h:5432";
  auto no_db = apply_environment(Config{}, env);
  REQUIRE_FALSE(no_db.ok());
  CHECK(contains(no_db.error().message, "DATABASE_URL: expected a database name"));

  // libpq's ?sslmode= is taken; other parameters are refused by name, saying what does their job.
  env.database_url = "postgresql://h/db?sslmode=require";
  auto tls = apply_environment(Config{}, env);
  REQUIRE(tls.ok());
  CHECK(tls->databases.at("db").server_tls_sslmode == ServerTlsMode::kRequire);
  CHECK(tls->databases.at("*").server_tls_sslmode == ServerTlsMode::kRequire);
  env.database_url = "postgresql://h/db?sslmode=verify-full";
  auto no_ca = apply_environment(Config{}, env);
  REQUIRE_FALSE(no_ca.ok());
  CHECK(contains(no_ca.error().message, "needs server_tls_ca_file"));
  env.database_url = "postgresql://h/db?sslmode=allow";
  auto allow = apply_environment(Config{}, env);
  REQUIRE_FALSE(allow.ok());
  CHECK(contains(allow.error().message, "DATABASE_URL: ?sslmode=allow: expected disable, prefer, require"));
  env.database_url = "postgresql://h/db?sslmode=require&connect_timeout=10";
  auto params = apply_environment(Config{}, env);
  REQUIRE_FALSE(params.ok());
  CHECK(params.error().message ==
        "DATABASE_URL: ?connect_timeout= is not taken in a URL here: use server_connect_timeout in [pgrelay]");
  env.database_url = "postgresql://h/db?frobnicate=1";
  auto unknown = apply_environment(Config{}, env);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message == "DATABASE_URL: ?frobnicate= is not taken in a URL here (only ?sslmode= is)");
}

TEST_CASE("PGRELAY_LISTEN accepts host:port, :port, port and [v6]:port") {
  auto listen = [](const std::string& value) {
    Environment env;
    env.listen = value;
    auto r = apply_environment(Config{}, env);
    REQUIRE_MESSAGE(r.ok(), value << ": " << (r.ok() ? "" : r.error().message));
    return std::make_pair(r->listen_addr, r->listen_port);
  };
  CHECK(listen("0.0.0.0:7000") == std::make_pair(std::string("0.0.0.0"), 7000));
  CHECK(listen(":7001") == std::make_pair(std::string("127.0.0.1"), 7001));
  CHECK(listen("7002") == std::make_pair(std::string("127.0.0.1"), 7002));
  CHECK(listen("[::1]:6432") == std::make_pair(std::string("::1"), 6432));
  CHECK(listen("localhost:1") == std::make_pair(std::string("localhost"), 1));
}

TEST_CASE("bad PGRELAY_LISTEN values are errors naming the variable") {
  for (const std::string bad : {"", "abc", "host:", "host:port", "::1:6432", "[::1]", "[::1]6432",
                                "[]:6432", "0", "70000", ":65536", "1234567", "-1", "h:1:2",
                                "db.example.com:6432", "[nothost]:6432"}) {
    Environment env;
    env.listen = bad;
    auto r = apply_environment(Config{}, env);
    REQUIRE_MESSAGE(!r.ok(), "accepted '" << bad << "'");
    CHECK_MESSAGE(r.error().message.starts_with("PGRELAY_LISTEN: "), r.error().message);
    CHECK(contains(r.error().message, "\"" + bad + "\""));
  }
}

TEST_CASE("load_config: an explicit path wins over PGRELAY_CONFIG, then env applies") {
  TempFile explicit_file("[pgrelay]\nlisten_port = 7100\n");
  TempFile env_file("[pgrelay]\nlisten_port = 7200\n");
  Environment env;
  env.config_path = env_file.path.string();
  env.listen = "0.0.0.0:7300";

  auto with_path = load_config(explicit_file.path.string(), Environment{});
  REQUIRE(with_path.ok());
  CHECK(with_path->listen_port == 7100);
  CHECK(with_path->source == explicit_file.path.string());

  Environment only_config;
  only_config.config_path = env_file.path.string();
  auto from_env = load_config(std::nullopt, only_config);
  REQUIRE(from_env.ok());
  CHECK(from_env->listen_port == 7200);

  auto overridden = load_config(explicit_file.path.string(), env);
  REQUIRE(overridden.ok());
  CHECK(overridden->listen_port == 7300);
  CHECK(overridden->listen_addr == "0.0.0.0");
}

TEST_CASE("load_config with no file gives defaults plus the environment") {
  auto plain = load_config(std::nullopt, Environment{});
  REQUIRE(plain.ok());
  CHECK(plain->source.empty());
  CHECK(plain->listen_port == 6432);
  CHECK(plain->databases.empty());

  Environment env;
  env.database_url = "postgresql://u:p@h/db";
  auto with_url = load_config(std::nullopt, env);
  REQUIRE(with_url.ok());
  CHECK(with_url->databases.count("db") == 1);
  CHECK(with_url->databases.count("*") == 1);
}

TEST_CASE("file errors name the path") {
  auto missing = load_config_file("/nonexistent/pgrelay.toml");
  REQUIRE_FALSE(missing.ok());
  CHECK(contains(missing.error().message, "/nonexistent/pgrelay.toml: cannot read config file"));

  auto dir = load_config_file(std::filesystem::temp_directory_path().string());
  REQUIRE_FALSE(dir.ok());
  CHECK(contains(dir.error().message, "directory"));

  Environment env;
  env.config_path = "/nonexistent/from-env.toml";
  auto via_env = load_config(std::nullopt, env);
  REQUIRE_FALSE(via_env.ok());
  CHECK(contains(via_env.error().message, "/nonexistent/from-env.toml"));
  CHECK(contains(via_env.error().message, "PGRELAY_CONFIG"));

  TempFile bad("[pgrelay]\nworkers = 1000\n");
  auto invalid = load_config(bad.path.string(), Environment{});
  REQUIRE_FALSE(invalid.ok());
  CHECK(contains(invalid.error().message, bad.path.string() + ":2: pgrelay.workers: "));
}

TEST_CASE("the shipped pgrelay.example.toml passes validation") {
  auto c = load_config_file(PGRELAY_SOURCE_DIR "/pgrelay.example.toml");
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  CHECK(c->pool.pool_mode == PoolMode::kTransaction);
  CHECK(c->server_idle_timeout == milliseconds(600'000));
  CHECK(c->max_message_size == 256u << 20);
  CHECK(c->max_startup_packet_size == 10240u);
  const DatabaseEntry* app = c->find_database("appdb");
  REQUIRE(app != nullptr);
  CHECK(app->pool.pool_size == 50);
  CHECK(app->pool.pool_mode == PoolMode::kTransaction);  // inherited
  CHECK(c->find_database("reports")->pool.pool_mode == PoolMode::kSession);
  CHECK(c->find_database("legacy")->host == "/var/run/postgresql");
  CHECK(c->find_database("anything_else")->name == "*");
}

}  // namespace
}  // namespace pgrelay::conf
