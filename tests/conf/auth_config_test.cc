// The client authentication keys of [pgrelay] and the [[hba]] rules: defaults, a full file, the
// auth_file next to the config, and every error as file:line: key.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "conf/loader.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using std::chrono::milliseconds;
using test::contains;
using test::ok_config;

void check_error(const std::string& toml, int line, const std::string& key, const std::string& fragment) {
  auto c = parse_config(toml, "test.toml");
  REQUIRE_MESSAGE(!c.ok(), "expected an error for:\n" << toml);
  const std::string& msg = c.error().message;
  const std::string where = "test.toml:" + std::to_string(line) + ": " + key + ": ";
  CHECK_MESSAGE(contains(msg, where), "want '" << where << "' in: " << msg);
  CHECK_MESSAGE(contains(msg, fragment), "want '" << fragment << "' in: " << msg);
}

// A directory with pgrelay.toml and users.txt, removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/pgrelay-conf-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

}  // namespace

TEST_CASE("auth defaults: scram-sha-256 for everyone, no auth file, no auth_query") {
  const Config c = ok_config("");
  CHECK(c.auth_type == AuthMethod::kScramSha256);
  CHECK(c.auth_file.empty());
  CHECK(c.auth_users.empty());
  CHECK(c.auth_user.empty());
  CHECK(c.auth_query == kDefaultAuthQuery);
  CHECK(contains(c.auth_query, "valuntil"));
  CHECK(c.auth_cache_ttl == milliseconds(30'000));
  CHECK(c.admin_users.empty());
  CHECK(c.stats_users.empty());
  CHECK(c.hba.empty());
}

TEST_CASE("auth keys: every one set, auth_file relative to the config file's directory") {
  TempDir dir;
  dir.write("users.txt", "\"app\" \"md580dcaaba30666a7775bc7ee0c688f8db\"\n\"ops\" \"plain\"\n");
  const std::string path = dir.write("pgrelay.toml", R"([pgrelay]
auth_type = "md5"
auth_file = "users.txt"
auth_user = "pgrelay_auth"
auth_query = "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1"
auth_cache_ttl = "5s"
admin_users = ["root", "ops"]
stats_users = ["grafana"]
)");
  auto c = load_config_file(path);
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  CHECK(c->auth_type == AuthMethod::kMd5);
  CHECK(c->auth_file == (dir.path / "users.txt").string());
  REQUIRE(c->auth_users.size() == 2);
  CHECK(c->auth_users.at("ops") == "plain");
  CHECK(c->auth_user == "pgrelay_auth");
  CHECK(contains(c->auth_query, "pg_authid"));
  CHECK(c->auth_cache_ttl == milliseconds(5'000));
  CHECK(c->is_admin("root"));
  CHECK(c->is_admin("ops"));
  CHECK_FALSE(c->is_admin("grafana"));
  CHECK(c->is_stats("grafana"));
  CHECK(c->is_stats("root"));                 // admins may read stats too
  CHECK_FALSE(c->is_stats("app"));
  CHECK_FALSE(c->is_admin(""));

  SUBCASE("a changed auth file is read again with the config (what SIGHUP does)") {
    dir.write("users.txt", "\"app\" \"new\"\n");
    auto again = load_config_file(path);
    REQUIRE(again.ok());
    CHECK(again->auth_users.size() == 1);
    CHECK(again->auth_users.at("app") == "new");
  }
  SUBCASE("an absolute auth_file path is used as is") {
    const std::string abs = dir.write("abs.txt", "\"x\" \"y\"\n");
    auto c2 = load_config_file(dir.write("abs.toml", "[pgrelay]\nauth_file = \"" + abs + "\"\n"));
    REQUIRE(c2.ok());
    CHECK(c2->auth_file == abs);
    CHECK(c2->auth_users.count("x") == 1);
  }
  SUBCASE("a bad auth file is an error at the key that names the file's own line") {
    dir.write("users.txt", "\"ok\" \"x\"\nnot quoted\n");
    auto bad = load_config_file(path);
    REQUIRE_FALSE(bad.ok());
    CHECK(contains(bad.error().message, path + ":3: pgrelay.auth_file: " + (dir.path / "users.txt").string() +
                                            ":2: expected a quoted user name"));
  }
  SUBCASE("a missing auth file is an error naming it") {
    std::filesystem::remove(dir.path / "users.txt");
    auto bad = load_config_file(path);
    REQUIRE_FALSE(bad.ok());
    CHECK(contains(bad.error().message, path + ":3: pgrelay.auth_file: " + (dir.path / "users.txt").string() +
                                            ": cannot read auth_file"));
  }
}

TEST_CASE("auth key errors are named by file, line and key") {
  check_error("[pgrelay]\nauth_type = \"scram\"", 2, "pgrelay.auth_type",
              "expected one of \"scram-sha-256\", \"md5\", \"password\", \"trust\", \"reject\" or \"cert\", got \"scram\"");
  check_error("[pgrelay]\n\nauth_file = \"\"", 3, "pgrelay.auth_file", "expected the path");
  check_error("[pgrelay]\nauth_user = \"\"", 2, "pgrelay.auth_user", "expected a role name");
  check_error("[pgrelay]\nauth_query = \"select passwd from pg_shadow\"", 2, "pgrelay.auth_query", "$1");
  check_error("[pgrelay]\nauth_cache_ttl = \"forever\"", 2, "pgrelay.auth_cache_ttl", "forever");
  check_error("[pgrelay]\nadmin_users = \"root\"", 2, "pgrelay.admin_users", "expected an array of non-empty strings");
  check_error("[pgrelay]\nstats_users = [\"a\", 1]", 2, "pgrelay.stats_users", "an array holding 1");
  check_error("[pgrelay]\nadmin_users = [\"\"]", 2, "pgrelay.admin_users", "an array holding \"\"");
  check_error("[pgrelay]\nauth_tyep = \"md5\"", 2, "pgrelay.auth_tyep", "did you mean auth_type?");
  CHECK(ok_config("[pgrelay]\nadmin_users = []\nauth_cache_ttl = 0").admin_users.empty());
  for (std::string_view m : kAuthMethodNames) {
    CHECK(to_string(ok_config("[pgrelay]\nauth_type = \"" + std::string(m) + "\"").auth_type) == m);
  }
}

TEST_CASE("[[hba]]: rules in order, with defaults, single names and lists") {
  const Config c = ok_config(R"([pgrelay]
auth_type = "trust"

[[hba]]
address = "10.0.0.66"
method = "reject"

[[hba]]
type = "hostnossl"
database = ["app", "reports"]
user = "monitor"
address = ["10.0.0.0/8", "::1/128"]
method = "md5"

[[hba]]
type = "hostssl"
method = "cert"

[[hba]]
type = "local"
database = "all"
user = ["all"]
address = "all"
method = "password"
)");
  REQUIRE(c.hba.size() == 4);
  CHECK(c.hba[0].number == 1);
  CHECK(c.hba[0].line == 4);   // the [[hba]] header
  CHECK(c.hba[0].type == HbaConnType::kHost);
  CHECK(c.hba[0].databases.empty());
  CHECK(c.hba[0].users.empty());
  REQUIRE(c.hba[0].addresses.size() == 1);
  CHECK(c.hba[0].addresses[0].to_string() == "10.0.0.66/32");
  CHECK(c.hba[0].method == AuthMethod::kReject);
  CHECK(c.hba[1].type == HbaConnType::kHostNoSsl);
  CHECK(c.hba[1].databases == std::vector<std::string>{"app", "reports"});
  CHECK(c.hba[1].users == std::vector<std::string>{"monitor"});
  CHECK(c.hba[1].addresses.size() == 2);
  CHECK(c.hba[1].method == AuthMethod::kMd5);
  CHECK(c.hba[2].type == HbaConnType::kHostSsl);
  CHECK(c.hba[2].method == AuthMethod::kCert);
  CHECK(c.hba[3].type == HbaConnType::kLocal);
  CHECK(c.hba[3].users.empty());
  CHECK(c.hba[3].addresses.empty());
  CHECK(c.hba[3].number == 4);

  HbaRequest req{"10.1.1.1", false, false, "app", "monitor"};
  CHECK(decide(c.hba, c.auth_type, req).rule == &c.hba[1]);
}

TEST_CASE("[[hba]] errors are named by file, line and rule") {
  check_error("[[hba]]\nmethod = \"ident\"", 2, "hba[1].method", "expected one of \"scram-sha-256\"");
  check_error("[[hba]]\nmethod = \"trust\"\n[[hba]]\naddress = \"10.0.0.1/8\"\nmethod = \"md5\"", 4, "hba[2].address",
              "did you mean \"10.0.0.0/8\"?");
  check_error("[[hba]]\naddress = [\"10.0.0.0/8\", \"bogus\"]\nmethod = \"md5\"", 2, "hba[1].address", "\"bogus\"");
  check_error("[[hba]]\ntype = \"hostgssenc\"\nmethod = \"md5\"", 2, "hba[1].type",
              "expected one of \"host\", \"hostssl\", \"hostnossl\" or \"local\"");
  check_error("[[hba]]\nuser = \"app\"", 1, "hba[1]", "expected a method in every [[hba]] rule");
  check_error("[[hba]]\nusers = \"app\"\nmethod = \"md5\"", 2, "hba[1].users", "did you mean user?");
  check_error("[[hba]]\ntype = \"local\"\naddress = \"127.0.0.1\"\nmethod = \"trust\"", 3, "hba[1].address",
              "expected no address in a \"local\" rule");
  check_error("[[hba]]\ndatabase = []\nmethod = \"trust\"", 2, "hba[1].database",
              "expected a non-empty string or an array of them, got []");
  check_error("hba = \"trust\"", 1, "hba", "expected [[hba]] tables");
  check_error("[hba]\nmethod = \"trust\"", 1, "hba", "expected [[hba]] tables");
  check_error("[hbaa]\nmethod = \"trust\"", 1, "hbaa", "expected [pgrelay], [cache], [databases.NAME], [users.NAME] or [[hba]]");
}

}  // namespace pgrelay::conf
