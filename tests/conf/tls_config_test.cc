// The client_tls_* and server_tls_* keys: defaults, files next to the config, the protocols
// syntax, a database's server_tls_sslmode, and every error as file:line: key.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "conf/loader.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;
using test::ok_config;

// A directory with PEM-named files (their contents do not matter to conf/) and a config.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/pgrelay-tls-conf-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
    for (const char* f : {"server.pem", "server.key", "ca.pem", "client.pem", "client.key"}) write(f, "PEM\n");
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Loads `toml` as <dir>/pgrelay.toml; the error must be at `line` and `key` and contain `fragment`.
void check_file_error(const TempDir& dir, const std::string& toml, int line, const std::string& key,
                      const std::string& fragment) {
  const std::string path = dir.write("pgrelay.toml", toml);
  auto c = load_config_file(path);
  REQUIRE_MESSAGE(!c.ok(), "expected an error for:\n" << toml);
  const std::string& msg = c.error().message;
  const std::string where = path + ":" + std::to_string(line) + ": " + key + ": ";
  CHECK_MESSAGE(contains(msg, where), "want '" << where << "' in: " << msg);
  CHECK_MESSAGE(contains(msg, fragment), "want '" << fragment << "' in: " << msg);
}

}  // namespace

TEST_CASE("TLS defaults: no TLS to clients (no certificate), none to servers, TLS 1.2 and up") {
  const Config c = ok_config("");
  CHECK(c.client_tls.sslmode == ClientTlsMode::kPrefer);
  CHECK_FALSE(c.client_tls.enabled());
  CHECK_FALSE(c.client_tls.required());
  CHECK(c.client_tls.cert_file.empty());
  CHECK(c.client_tls.protocols.min == TlsVersion::kTls12);
  CHECK(c.client_tls.protocols.max == TlsVersion::kTls13);
  CHECK(c.client_tls.ciphers == kDefaultTlsCiphers);
  CHECK(c.server_tls.sslmode == ServerTlsMode::kDisable);
  CHECK(c.server_tls.protocols == TlsProtocols{});
  const Config d = ok_config("[databases.app]\nhost = \"db\"\n");
  CHECK(d.databases.at("app").server_tls_sslmode == ServerTlsMode::kDisable);
}

TEST_CASE("TLS keys: every one set, files relative to the config file's directory") {
  TempDir dir;
  const std::string path = dir.write("pgrelay.toml", R"([pgrelay]
client_tls_sslmode = "verify-ca"
client_tls_cert_file = "server.pem"
client_tls_key_file = "server.key"
client_tls_ca_file = "ca.pem"
client_tls_protocols = "tlsv1.3"
client_tls_ciphers = "HIGH:!aNULL"
server_tls_sslmode = "verify-full"
server_tls_ca_file = "ca.pem"
server_tls_cert_file = "client.pem"
server_tls_key_file = "client.key"
server_tls_protocols = "tlsv1.1, tlsv1.2"
server_tls_ciphers = "ECDHE+AESGCM"

[databases.app]
host = "db.example.com"

[databases.local]
host = "/var/run/postgresql"
server_tls_sslmode = "disable"
)");
  auto c = load_config_file(path);
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  CHECK(c->client_tls.sslmode == ClientTlsMode::kVerifyCa);
  CHECK(c->client_tls.enabled());
  CHECK(c->client_tls.required());
  CHECK(c->client_tls.cert_file == dir.file("server.pem"));
  CHECK(c->client_tls.key_file == dir.file("server.key"));
  CHECK(c->client_tls.ca_file == dir.file("ca.pem"));
  CHECK(c->client_tls.protocols.min == TlsVersion::kTls13);
  CHECK(c->client_tls.protocols.max == TlsVersion::kTls13);
  CHECK(c->client_tls.ciphers == "HIGH:!aNULL");
  CHECK(c->server_tls.sslmode == ServerTlsMode::kVerifyFull);
  CHECK(c->server_tls.ca_file == dir.file("ca.pem"));
  CHECK(c->server_tls.cert_file == dir.file("client.pem"));
  CHECK(c->server_tls.key_file == dir.file("client.key"));
  CHECK(c->server_tls.protocols.min == TlsVersion::kTls11);
  CHECK(c->server_tls.protocols.max == TlsVersion::kTls12);
  CHECK(c->server_tls.ciphers == "ECDHE+AESGCM");
  // A database inherits server_tls_sslmode unless it sets its own.
  CHECK(c->databases.at("app").server_tls_sslmode == ServerTlsMode::kVerifyFull);
  CHECK(c->databases.at("local").server_tls_sslmode == ServerTlsMode::kDisable);

  SUBCASE("an absolute path is used as is") {
    auto c2 = load_config_file(dir.write("abs.toml", "[pgrelay]\nclient_tls_cert_file = \"" + dir.file("server.pem") +
                                                         "\"\nclient_tls_key_file = \"" + dir.file("server.key") + "\"\n"));
    REQUIRE(c2.ok());
    CHECK(c2->client_tls.cert_file == dir.file("server.pem"));
    CHECK(c2->client_tls.enabled());
    CHECK(c2->client_tls.sslmode == ClientTlsMode::kPrefer);   // a certificate alone turns TLS on
  }
  SUBCASE("client_tls_sslmode = \"disable\" keeps TLS off even with a certificate") {
    auto c2 = load_config_file(dir.write("off.toml", "[pgrelay]\nclient_tls_sslmode = \"disable\"\n"
                                                     "client_tls_cert_file = \"server.pem\"\nclient_tls_key_file = \"server.key\"\n"));
    REQUIRE(c2.ok());
    CHECK_FALSE(c2->client_tls.enabled());
  }
  SUBCASE("a missing file is an error naming it") {
    std::filesystem::remove(dir.path / "server.key");
    auto bad = load_config_file(path);
    REQUIRE_FALSE(bad.ok());
    CHECK(contains(bad.error().message, path + ":4: pgrelay.client_tls_key_file: cannot read \"" +
                                            dir.file("server.key") + "\": No such file or directory"));
  }
  SUBCASE("the DATABASE_URL entries inherit server_tls_sslmode too") {
    Environment env;
    env.database_url = "postgresql://app@10.0.0.5/appdb";
    auto withenv = apply_environment(*c, env);
    REQUIRE(withenv.ok());
    CHECK(withenv->databases.at("appdb").server_tls_sslmode == ServerTlsMode::kVerifyFull);
  }
}

TEST_CASE("client_tls_protocols / server_tls_protocols syntax") {
  auto range = [](const std::string& text) {
    auto p = parse_tls_protocols(text);
    REQUIRE_MESSAGE(p.ok(), text << ": " << (p.ok() ? "" : p.error().message));
    return std::make_pair(p->min, p->max);
  };
  CHECK(range("secure") == std::make_pair(TlsVersion::kTls12, TlsVersion::kTls13));
  CHECK(range("all") == std::make_pair(TlsVersion::kTls10, TlsVersion::kTls13));
  CHECK(range("legacy") == std::make_pair(TlsVersion::kTls10, TlsVersion::kTls13));
  CHECK(range("tlsv1.2") == std::make_pair(TlsVersion::kTls12, TlsVersion::kTls12));
  CHECK(range("tlsv1.3,tlsv1.2") == std::make_pair(TlsVersion::kTls12, TlsVersion::kTls13));
  CHECK(range("tlsv1.0 tlsv1.1") == std::make_pair(TlsVersion::kTls10, TlsVersion::kTls11));
  for (const char* bad : {"", "tls1.2", "tlsv1.0,tlsv1.2", "secure,tlsv1.3", "all secure", "TLSv1.2", ","}) {
    auto p = parse_tls_protocols(bad);
    CHECK_MESSAGE(!p.ok(), "accepted \"" << bad << "\"");
  }
  // SHOW CONFIG's spelling reads back as the same range.
  for (const char* text : {"secure", "all", "tlsv1.3", "tlsv1.1,tlsv1.2", "tlsv1.0,tlsv1.1,tlsv1.2"}) {
    auto p = parse_tls_protocols(text);
    REQUIRE(p.ok());
    auto again = parse_tls_protocols(to_config_string(*p));
    REQUIRE(again.ok());
    CHECK(*again == *p);
  }
  CHECK(to_config_string(TlsProtocols{TlsVersion::kTls12, TlsVersion::kTls13}) == "secure");
  CHECK(to_config_string(TlsProtocols{TlsVersion::kTls11, TlsVersion::kTls12}) == "tlsv1.1,tlsv1.2");
  auto gap = parse_tls_protocols("tlsv1.0,tlsv1.2");
  REQUIRE_FALSE(gap.ok());
  CHECK(contains(gap.error().message, "TLSv1.1 is missing in between"));
}

TEST_CASE("TLS key errors are named by file, line and key") {
  TempDir dir;
  check_file_error(dir, "[pgrelay]\nclient_tls_sslmode = \"on\"", 2, "pgrelay.client_tls_sslmode",
                   "expected one of \"disable\", \"allow\", \"prefer\", \"require\", \"verify-ca\" or \"verify-full\", got \"on\"");
  check_file_error(dir, "[pgrelay]\nserver_tls_sslmode = \"allow\"", 2, "pgrelay.server_tls_sslmode",
                   "expected one of \"disable\", \"prefer\", \"require\", \"verify-ca\" or \"verify-full\", got \"allow\"");
  check_file_error(dir, "[pgrelay]\n\nclient_tls_cert_file = \"server.pem\"", 3, "pgrelay.client_tls_cert_file",
                   "expected client_tls_key_file too (a certificate needs its private key), got none");
  check_file_error(dir, "[pgrelay]\nserver_tls_key_file = \"client.key\"", 2, "pgrelay.server_tls_key_file",
                   "expected server_tls_cert_file too");
  check_file_error(dir, "[pgrelay]\nclient_tls_sslmode = \"require\"", 2, "pgrelay.client_tls_sslmode",
                   "expected client_tls_cert_file and client_tls_key_file with client_tls_sslmode \"require\"");
  check_file_error(dir,
                   "[pgrelay]\nclient_tls_sslmode = \"verify-full\"\nclient_tls_cert_file = \"server.pem\"\n"
                   "client_tls_key_file = \"server.key\"",
                   2, "pgrelay.client_tls_sslmode", "expected client_tls_ca_file with client_tls_sslmode \"verify-full\"");
  check_file_error(dir, "[pgrelay]\nserver_tls_sslmode = \"verify-ca\"", 2, "pgrelay.server_tls_sslmode",
                   "expected server_tls_ca_file with server_tls_sslmode \"verify-ca\"");
  check_file_error(dir, "[databases.app]\nhost = \"db\"\nserver_tls_sslmode = \"verify-full\"", 3,
                   "databases.app.server_tls_sslmode", "expected server_tls_ca_file in [pgrelay]");
  check_file_error(dir, "[databases.app]\nserver_tls_sslmode = \"sometimes\"", 2, "databases.app.server_tls_sslmode",
                   "got \"sometimes\"");
  check_file_error(dir, "[pgrelay]\nclient_tls_ca_file = \"nope.pem\"", 2, "pgrelay.client_tls_ca_file",
                   "cannot read \"" + dir.file("nope.pem") + "\"");
  check_file_error(dir, "[pgrelay]\nserver_tls_ca_file = \"\"", 2, "pgrelay.server_tls_ca_file",
                   "expected the path of a PEM file, got \"\"");
  check_file_error(dir, "[pgrelay]\nserver_tls_ca_file = \".\"", 2, "pgrelay.server_tls_ca_file",
                   "expected a PEM file, got the directory");
  check_file_error(dir, "[pgrelay]\nclient_tls_protocols = \"tlsv1.0,tlsv1.2\"", 2, "pgrelay.client_tls_protocols",
                   "TLSv1.1 is missing in between");
  check_file_error(dir, "[pgrelay]\nserver_tls_ciphers = \"\"", 2, "pgrelay.server_tls_ciphers",
                   "expected an OpenSSL cipher list");
  check_file_error(dir, "[pgrelay]\nclient_tls_keyfile = \"x\"", 2, "pgrelay.client_tls_keyfile",
                   "did you mean client_tls_key_file?");
  for (std::string_view m : kClientTlsModeNames) {
    const std::string toml = "[pgrelay]\nclient_tls_sslmode = \"" + std::string(m) +
                             "\"\nclient_tls_cert_file = \"server.pem\"\nclient_tls_key_file = \"server.key\"\n"
                             "client_tls_ca_file = \"ca.pem\"\n";
    auto c = load_config_file(dir.write("modes.toml", toml));
    REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
    CHECK(to_string(c->client_tls.sslmode) == m);
  }
  for (std::string_view m : kServerTlsModeNames) {
    const std::string toml = "[pgrelay]\nserver_tls_sslmode = \"" + std::string(m) + "\"\nserver_tls_ca_file = \"ca.pem\"\n";
    auto c = load_config_file(dir.write("modes.toml", toml));
    REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
    CHECK(to_string(c->server_tls.sslmode) == m);
  }
}

}  // namespace pgrelay::conf
