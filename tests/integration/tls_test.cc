// TLS end to end: libpq and psql through pgrelay with sslmode=require and verify-full, protocols and
// ciphers, client_tls_sslmode=require, bad TLS input, the cert and password methods,
// SCRAM-SHA-256-PLUS, certificate reload on SIGHUP, and pgrelay -> PostgreSQL over TLS (verify-full,
// a client certificate, SCRAM with channel binding, connections shared by workers).
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "harness.h"
#include "tls_util.h"

using namespace pgrelay::it;

namespace {

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

const TestCerts& certs() {
  static TestCerts c({"tls_cert_user", "someone_else", "pgrelay"});
  return c;
}

// Roles on the shared cluster (trusted over TCP there).
void create_roles() {
  static bool done = false;
  if (done) return;
  Conn c = connect_ok(direct_conninfo());
  for (const char* role : {"tls_cert_user", "tls_pw_user"}) exec(c.get(), std::string("CREATE ROLE ") + role + " LOGIN");
  done = true;
}

// pgrelay with its certificate (server.pem) and client certificates checked against ca.pem.
RelayConfig tls_config(const std::string& cert = "server.pem", const std::string& key = "server.key") {
  RelayConfig cfg;
  cfg.set("client_tls_cert_file", quoted(certs().path(cert)))
      .set("client_tls_key_file", quoted(certs().path(key)))
      .set("client_tls_ca_file", quoted(certs().path("ca.pem")));
  return cfg;
}

// A conninfo for `host` (a name, so verify-full checks it) rather than the harness's 127.0.0.1.
std::string named_conninfo(const std::string& host, int port, const std::string& extra) {
  return "host=" + host + " port=" + std::to_string(port) + " dbname=postgres user=postgres connect_timeout=5 " +
         "gssencmode=disable " + extra;
}

std::string verify_full(const std::string& ca = "ca.pem") {
  return "sslmode=verify-full sslrootcert=" + certs().path(ca);
}

std::string client_cert(const std::string& name) {
  return "sslcert=" + certs().path(name + ".pem") + " sslkey=" + certs().path(name + ".key");
}

std::string connect_error(const std::string& conninfo) {
  Conn c = connect(conninfo);
  REQUIRE_MESSAGE(PQstatus(c.get()) != CONNECTION_OK, "connected, but should not have: " << conninfo);
  return PQerrorMessage(c.get());
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// One column of a result (the admin console's SHOW commands), by name.
std::vector<std::string> column(PGconn* c, const std::string& sql, const std::string& name) {
  Result r(PQexec(c, sql.c_str()));
  REQUIRE_MESSAGE(PQresultStatus(r.get()) == PGRES_TUPLES_OK, sql << ": " << PQerrorMessage(c));
  const int col = PQfnumber(r.get(), name.c_str());
  REQUIRE(col >= 0);
  std::vector<std::string> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(PQgetisnull(r.get(), i, col) ? "NULL" : PQgetvalue(r.get(), i, col));
  return out;
}

// Waits until pgrelay's log contains `text`.
bool log_shows(PgrelayProcess& relay, const std::string& text, Millis timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (contains(relay.log(), text)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

}  // namespace

TEST_CASE("TLS to clients: libpq and psql with sslmode=require and verify-full") {
  RelayConfig cfg = tls_config();
  cfg.set("admin_users", "[\"postgres\"]");
  PgrelayProcess relay(cfg);
  Conn c = connect_ok(relay.conninfo("postgres", "postgres", "sslmode=require"));
  CHECK(PQsslInUse(c.get()) == 1);
  CHECK(std::string(PQsslAttribute(c.get(), "protocol")) == "TLSv1.3");
  CHECK(scalar(c.get(), "select 6 * 7") == "42");
  // A result of many TLS records, and a statement of several, arrive whole.
  const std::string big = "select string_agg(md5(g::text), ',') from generate_series(1, 60000) g";
  Conn direct = connect_ok(direct_conninfo());
  CHECK(scalar(c.get(), big) == scalar(direct.get(), big));
  const std::string long_sql = "select length('" + std::string(200'000, 'x') + "')";
  CHECK(scalar(c.get(), long_sql) == "200000");

  for (const char* host : {"localhost", "127.0.0.1"}) {
    CAPTURE(host);
    Conn v = connect_ok(named_conninfo(host, relay.port(), verify_full()));
    CHECK(PQsslInUse(v.get()) == 1);
    CHECK(scalar(v.get(), "select current_user") == "postgres");
  }
  // A client that trusts another CA refuses pgrelay's certificate.
  CHECK(contains(connect_error(named_conninfo("localhost", relay.port(), verify_full("rogue-ca.pem"))),
                 "certificate verify failed"));
  // client_tls_sslmode defaults to prefer: a plain client is still served.
  Conn plain = connect_ok(relay.conninfo("postgres", "postgres", "sslmode=disable"));
  CHECK(PQsslInUse(plain.get()) == 0);
  CHECK(scalar(plain.get(), "select 1") == "1");

  auto psql = run_command(std::string(PGRELAY_IT_PSQL) + " -X -At " +
                              shell_quote(named_conninfo("localhost", relay.port(), verify_full())) +
                              " -c 'select 40 + 2' -c '\\conninfo'",
                          30s);
  CHECK_MESSAGE(psql.exit_code == 0, psql.output);
  CHECK(contains(psql.output, "42"));
  CHECK_MESSAGE(contains(psql.output, "SSL connection (protocol: TLSv1.3"), psql.output);

  // The admin console works over TLS too, and SHOW CLIENTS says who uses it (PgBouncer's format).
  Conn console = connect_ok(relay.conninfo("pgrelay", "postgres", "sslmode=require"));
  // psql has exited, but pgrelay may not have seen its connection close yet on a busy machine.
  auto tls_column = column(console.get(), "SHOW CLIENTS", "tls");
  for (int i = 0; i < 50 && tls_column.size() > 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    tls_column = column(console.get(), "SHOW CLIENTS", "tls");
  }
  CHECK(std::count(tls_column.begin(), tls_column.end(), "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519") == 2);
  CHECK(std::count(tls_column.begin(), tls_column.end(), "NULL") == 1);   // `plain`
}

TEST_CASE("client_tls_protocols and client_tls_ciphers decide the handshake") {
  RelayConfig cfg = tls_config();
  cfg.set("client_tls_protocols", "\"tlsv1.2\"").set("client_tls_ciphers", "\"ECDHE-ECDSA-AES128-GCM-SHA256\"");
  PgrelayProcess relay(cfg);
  Conn c = connect_ok(relay.conninfo("postgres", "postgres", "sslmode=require"));
  CHECK(std::string(PQsslAttribute(c.get(), "protocol")) == "TLSv1.2");
  CHECK(std::string(PQsslAttribute(c.get(), "cipher")) == "ECDHE-ECDSA-AES128-GCM-SHA256");
  // A client that will only speak TLS 1.3 gets nowhere; pgrelay says why and carries on.
  connect_error(relay.conninfo("postgres", "postgres", "sslmode=require ssl_min_protocol_version=TLSv1.3"));
  CHECK(log_shows(relay, "TLS handshake failed"));
  CHECK(scalar(c.get(), "select 2") == "2");
}

TEST_CASE("client_tls_sslmode = require: a plain client gets FATAL 28000 after its StartupMessage") {
  RelayConfig cfg = tls_config();
  cfg.set("client_tls_sslmode", "\"require\"");
  PgrelayProcess relay(cfg);
  const std::string expected =
      "connection requires TLS (client_tls_sslmode \"require\"): rejecting host \"127.0.0.1\", user \"postgres\", "
      "database \"postgres\", no encryption";
  RawClient raw(relay.port());
  raw.send(startup_packet({{"user", "postgres"}, {"database", "postgres"}}));
  auto error = first_error(raw.read_messages_until('Z', 5s));
  REQUIRE(error.has_value());
  CHECK(error->severity == "FATAL");
  CHECK(error->sqlstate == "28000");
  CHECK(error->message == expected);
  CHECK(contains(connect_error(relay.conninfo("postgres", "postgres", "sslmode=disable")), expected));
  // sslmode=prefer (libpq's default) and require get TLS and are let in.
  for (const char* mode : {"sslmode=prefer", "sslmode=require"}) {
    Conn c = connect_ok(relay.conninfo("postgres", "postgres", mode));
    CHECK(PQsslInUse(c.get()) == 1);
  }
}

TEST_CASE("client_tls_sslmode = verify-ca / verify-full: a client certificate signed by client_tls_ca_file is required") {
  for (const char* mode : {"verify-ca", "verify-full"}) {
    CAPTURE(mode);
    RelayConfig cfg = tls_config();
    cfg.set("client_tls_sslmode", quoted(mode));
    PgrelayProcess relay(cfg);
    Conn c = connect_ok(relay.conninfo("postgres", "postgres", "sslmode=require " + client_cert("someone_else")));
    CHECK(PQsslInUse(c.get()) == 1);
    CHECK(scalar(c.get(), "select current_user") == "postgres");   // trust: the certificate only had to verify
    connect_error(relay.conninfo("postgres", "postgres", "sslmode=require"));
    connect_error(relay.conninfo("postgres", "postgres", "sslmode=require " + client_cert("rogue-client")));
    CHECK(contains(connect_error(relay.conninfo("postgres", "postgres", "sslmode=disable")),
                   "connection requires TLS (client_tls_sslmode \"" + std::string(mode) + "\")"));
    CHECK(log_shows(relay, "TLS handshake failed"));
    CHECK(relay.running());
  }
}

TEST_CASE("SSLRequest gets 'S' with TLS on; bad TLS input ends only that client") {
  PgrelayProcess relay(tls_config());
  Conn survivor = connect_ok(relay.conninfo("postgres", "postgres", "sslmode=require"));
  auto answer_then = [&](const std::string& after, Millis wait) {
    RawClient c(relay.port());
    c.send(ssl_request());
    std::string s = c.read_exact(1, 5s);
    REQUIRE(s == "S");
    if (!after.empty()) c.send(after);
    bool eof = false;
    c.read_until_eof(wait, &eof);
    return eof;
  };
  SUBCASE("plain text instead of a ClientHello") { CHECK(answer_then("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5s)); }
  SUBCASE("a StartupMessage in clear right behind the SSLRequest (buffer injection)") {
    RawClient c(relay.port());
    c.send(ssl_request() + startup_packet({{"user", "postgres"}, {"database", "postgres"}}));
    CHECK(c.read_exact(1, 5s) == "S");
    bool eof = false;
    const std::string rest = c.read_until_eof(5s, &eof);
    CHECK(eof);
    CHECK_FALSE(first_error(rest).has_value());   // no PostgreSQL message in clear: it was never taken as one
  }
  SUBCASE("random bytes after 'S', many clients") {
    std::mt19937 rng(42);
    for (int i = 0; i < 20; ++i) {
      std::string junk(1 + rng() % 600, '\0');
      for (char& ch : junk) ch = char(rng());
      CHECK(answer_then(junk, 5s));
    }
  }
  SUBCASE("silence after 'S': client_login_timeout (5 s) closes it") { CHECK(answer_then("", 9s)); }
  SUBCASE("GSSENCRequest is still 'N'") {
    RawClient c(relay.port());
    c.send(gssenc_request());
    CHECK(c.read_exact(1, 5s) == "N");
  }
  CHECK(relay.running());
  CHECK(scalar(survivor.get(), "select 'still here'") == "still here");
  Conn after = connect_ok(relay.conninfo("postgres", "postgres", "sslmode=require"));
  CHECK(PQsslInUse(after.get()) == 1);
}

TEST_CASE("hba methods over TLS: cert (CN = user), password, and SCRAM-SHA-256-PLUS") {
  create_roles();
  Conn direct = connect_ok(direct_conninfo());
  const std::string scram_secret =
      scalar(direct.get(), "select rolpassword from pg_authid where rolname = 'scram_user'");
  write_file(certs().path("users.txt"),
             "\"tls_pw_user\" \"pwsecret\"\n\"scram_user\" \"" + scram_secret + "\"\n");
  RelayConfig cfg = tls_config();
  cfg.set("auth_type", "\"scram-sha-256\"").set("auth_file", quoted(certs().path("users.txt")));
  cfg.databases += R"(
[[hba]]
user = "tls_cert_user"
method = "cert"

[[hba]]
user = "tls_pw_user"
method = "password"

[[hba]]
user = "scram_user"
method = "scram-sha-256"

[[hba]]
method = "trust"
)";
  PgrelayProcess relay(cfg);

  SUBCASE("cert: a certificate with CN = user lets it in; no certificate, another CN or CA does not") {
    Conn c = connect_ok(relay.conninfo("postgres", "tls_cert_user", "sslmode=require " + client_cert("tls_cert_user")));
    CHECK(scalar(c.get(), "select current_user") == "tls_cert_user");
    Conn v = connect_ok(named_conninfo("localhost", relay.port(), verify_full() + " user=tls_cert_user " +
                                                                      client_cert("tls_cert_user")));
    CHECK(PQsslInUse(v.get()) == 1);

    auto none = tls_login_error(relay.port(), "tls_cert_user", "postgres");
    REQUIRE(none.has_value());
    CHECK(none->sqlstate == "28000");
    CHECK(none->message == "connection requires a valid client certificate");
    auto other = tls_login_error(relay.port(), "tls_cert_user", "postgres", certs().path("someone_else.pem"),
                                 certs().path("someone_else.key"));
    REQUIRE(other.has_value());
    CHECK(other->sqlstate == "28000");
    CHECK(other->message == "certificate authentication failed for user \"tls_cert_user\"");
    auto rogue = tls_login_error(relay.port(), "tls_cert_user", "postgres", certs().path("rogue-client.pem"),
                                 certs().path("rogue-client.key"));
    REQUIRE(rogue.has_value());
    CHECK(rogue->message == "connection requires a valid client certificate");
    // The right certificate over the raw client too: no error, ReadyForQuery.
    CHECK_FALSE(tls_login_error(relay.port(), "tls_cert_user", "postgres", certs().path("tls_cert_user.pem"),
                                certs().path("tls_cert_user.key")));
    CHECK(contains(connect_error(relay.conninfo("postgres", "tls_cert_user", "sslmode=disable")),
                   "requires a client certificate (method \"cert\"), which needs TLS"));
  }
  SUBCASE("password: in clear, but only inside TLS") {
    Conn c = connect_ok(relay.conninfo("postgres", "tls_pw_user", "sslmode=require password=pwsecret"));
    CHECK(scalar(c.get(), "select current_user") == "tls_pw_user");
    CHECK(contains(connect_error(relay.conninfo("postgres", "tls_pw_user", "sslmode=require password=wrong")),
                   "password authentication failed for user \"tls_pw_user\""));
    CHECK(contains(connect_error(relay.conninfo("postgres", "tls_pw_user", "sslmode=disable password=pwsecret")),
                   "allows method \"password\" only over TLS"));
  }
  SUBCASE("SCRAM-SHA-256-PLUS: channel_binding=require succeeds over TLS, and the identity reaches PostgreSQL") {
    Conn c = connect_ok(relay.conninfo("postgres", "scram_user", "sslmode=require channel_binding=require "
                                                                  "password=scrampass"));
    CHECK(scalar(c.get(), "select current_user") == "scram_user");
    Conn unbound = connect_ok(relay.conninfo("postgres", "scram_user", "sslmode=require channel_binding=disable "
                                                                        "password=scrampass"));
    CHECK(scalar(unbound.get(), "select 1") == "1");
    // Without TLS nothing can be bound: libpq refuses, as with PostgreSQL.
    connect_error(relay.conninfo("postgres", "scram_user", "sslmode=disable channel_binding=require password=scrampass"));
    CHECK(contains(connect_error(relay.conninfo("postgres", "scram_user", "sslmode=require channel_binding=require "
                                                                           "password=wrong")),
                   "password authentication failed for user \"scram_user\""));
  }
}

TEST_CASE("SIGHUP loads a new certificate for new connections; a bad one keeps the old") {
  PgrelayProcess relay(tls_config());
  CHECK(TlsRawClient(relay.port()).peer_cn() == "localhost");
  Conn held = connect_ok(relay.conninfo("postgres", "postgres", "sslmode=require"));

  relay.write_config(tls_config("server2.pem", "server2.key"));
  relay.signal(SIGHUP);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (TlsRawClient(relay.port()).peer_cn() != "pgrelay-reloaded" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  CHECK(TlsRawClient(relay.port()).peer_cn() == "pgrelay-reloaded");
  CHECK(scalar(held.get(), "select 'kept'") == "kept");   // made with the old context, still fine
  Conn fresh = connect_ok(named_conninfo("localhost", relay.port(), verify_full()));
  CHECK(PQsslInUse(fresh.get()) == 1);

  SUBCASE("a key that is not a key") {
    write_file(certs().path("garbage.key"), "not a key\n");
    relay.write_config(tls_config("server.pem", "garbage.key"));
    relay.signal(SIGHUP);
    CHECK(log_shows(relay, "client_tls_key_file " + certs().path("garbage.key")));
  }
  SUBCASE("a key of another certificate") {
    relay.write_config(tls_config("server.pem", "server2.key"));
    relay.signal(SIGHUP);
    CHECK(log_shows(relay, "client_tls_key_file " + certs().path("server2.key")));
    CHECK(contains(relay.log(), "key values mismatch"));
  }
  CHECK(log_shows(relay, "keeping the previous TLS settings for clients"));
  CHECK(TlsRawClient(relay.port()).peer_cn() == "pgrelay-reloaded");
  CHECK(scalar(held.get(), "select 1") == "1");
}

TEST_CASE("a certificate that does not load stops pgrelay at start and fails --check-config") {
  write_file(certs().path("broken.pem"), "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
  const std::string config = certs().path("broken.toml");
  write_file(config, "[pgrelay]\nlisten_port = " + std::to_string(free_port()) + "\nclient_tls_cert_file = " +
                         quoted(certs().path("broken.pem")) + "\nclient_tls_key_file = " +
                         quoted(certs().path("server.key")) + "\n");
  auto check = run_command(pgrelay_binary() + " --check-config " + config, 20s);
  CHECK(check.exit_code == 1);
  CHECK_MESSAGE(contains(check.output, "client_tls_cert_file " + certs().path("broken.pem")), check.output);
  auto start = run_command(pgrelay_binary() + " -c " + config, 20s);
  CHECK(start.exit_code == 1);
  CHECK_MESSAGE(contains(start.output, "client_tls_cert_file " + certs().path("broken.pem")), start.output);
}

TEST_CASE("pgrelay -> PostgreSQL over TLS: verify-full, a client certificate, SCRAM, shared by workers") {
  // Plain connections are refused outright, so every success below went over TLS.
  TlsPostgres pg(certs(), "hostnossl all all 127.0.0.1/32 reject\n"
                          "hostssl all pgrelay 127.0.0.1/32 cert\n"
                          "hostssl all scram_tls 127.0.0.1/32 scram-sha-256\n");
  {
    Conn admin = connect_ok(conninfo(pg.port(), "postgres", "postgres", "sslmode=require"));
    REQUIRE(exec(admin.get(), "CREATE ROLE pgrelay LOGIN").ok());
    REQUIRE(exec(admin.get(), "SET password_encryption = 'scram-sha-256'; "
                              "CREATE ROLE scram_tls LOGIN PASSWORD 'tlspass'").ok());
    CHECK(contains(connect_error(conninfo(pg.port(), "postgres", "postgres", "sslmode=disable")), "no encryption"));
  }
  const std::string at_pg = "port = " + std::to_string(pg.port()) + "\ndbname = \"postgres\"\n";
  RelayConfig cfg;
  cfg.set("admin_users", "[\"postgres\"]").set("server_tls_sslmode", "\"verify-full\"")
      .set("server_tls_ca_file", quoted(certs().path("ca.pem")))
      .set("server_tls_cert_file", quoted(certs().path("pgrelay.pem")))
      .set("server_tls_key_file", quoted(certs().path("pgrelay.key")))
      .set("pool_mode", "\"transaction\"");
  cfg.without_databases()
      .add_database("byname", "host = \"localhost\"\npool_size = 1\n" + at_pg)
      .add_database("byip", "host = \"127.0.0.1\"\n" + at_pg)
      .add_database("byip_ca", "host = \"127.0.0.1\"\nserver_tls_sslmode = \"verify-ca\"\n" + at_pg)
      .add_database("ascert", "host = \"localhost\"\nuser = \"pgrelay\"\n" + at_pg)
      .add_database("scram", "host = \"localhost\"\nuser = \"scram_tls\"\npassword = \"tlspass\"\n" + at_pg)
      .add_database("plain_prefer", "dbname = \"postgres\"\nserver_tls_sslmode = \"prefer\"\n")
      .add_database("plain_require", "dbname = \"postgres\"\nserver_tls_sslmode = \"require\"\n");
  PgrelayProcess relay(cfg);
  const std::string ssl_query = "select ssl::text || ' ' || coalesce(client_dn, '-') from pg_stat_ssl where pid = pg_backend_pid()";

  Conn byname = connect_ok(relay.conninfo("byname"));
  CHECK(scalar(byname.get(), ssl_query) == "true /CN=pgrelay");
  CHECK(scalar(byname.get(), "select ssl from pg_stat_ssl where pid = pg_backend_pid()") == "t");
  // PostgreSQL's certificate names localhost only: verify-full to 127.0.0.1 must fail, verify-ca not.
  const std::string mismatch = connect_error(relay.conninfo("byip"));
  CHECK_MESSAGE(contains(mismatch, "server_tls_sslmode \"verify-full\""), mismatch);
  CHECK_MESSAGE(contains(mismatch, "certificate verify failed"), mismatch);
  Conn byip_ca = connect_ok(relay.conninfo("byip_ca"));
  CHECK(scalar(byip_ca.get(), "select ssl from pg_stat_ssl where pid = pg_backend_pid()") == "t");
  // PostgreSQL's hba says cert for "pgrelay": the server_tls_cert_file is what lets it in.
  Conn ascert = connect_ok(relay.conninfo("ascert"));
  CHECK(scalar(ascert.get(), "select current_user") == "pgrelay");
  // SCRAM over TLS (PostgreSQL offers SCRAM-SHA-256-PLUS there, and pgrelay binds to its certificate).
  Conn scram = connect_ok(relay.conninfo("scram"));
  CHECK(scalar(scram.get(), "select current_user") == "scram_tls");
  // The shared cluster has no TLS: prefer falls back to plain, require refuses.
  Conn prefer = connect_ok(relay.conninfo("plain_prefer"));
  CHECK(scalar(prefer.get(), "select ssl from pg_stat_ssl where pid = pg_backend_pid()") == "f");
  CHECK(contains(connect_error(relay.conninfo("plain_require")), "does not support TLS, but server_tls_sslmode \"require\" requires it"));

  // pool_size 1 in transaction mode: one TLS server connection serves every client, whichever
  // of the two workers accepted it (the connection, SSL object included, moves between them).
  std::vector<std::thread> clients;
  std::mutex mu;
  std::set<std::string> backends;
  int tls_answers = 0;
  std::string failure;
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&] {
      try {
        Conn c = connect_ok(relay.conninfo("byname"));
        for (int q = 0; q < 15; ++q) {
          const std::string row = scalar(c.get(), "select pg_backend_pid()::text || ' ' || ssl::text from pg_stat_ssl "
                                                  "where pid = pg_backend_pid()");
          std::lock_guard lock(mu);
          backends.insert(row);
          tls_answers += row.ends_with(" true");
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        failure = e.what();
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK_MESSAGE(failure.empty(), failure);
  CHECK(tls_answers == 90);
  CHECK(backends.size() == 1);
  Conn console = connect_ok(relay.conninfo("pgrelay"));
  // Both columns from one SHOW SERVERS: a lane connection may go back to its pool between two.
  Result servers(PQexec(console.get(), "SHOW SERVERS"));
  REQUIRE(PQresultStatus(servers.get()) == PGRES_TUPLES_OK);
  const int database_col = PQfnumber(servers.get(), "database");
  const int tls_col = PQfnumber(servers.get(), "tls");
  REQUIRE(database_col >= 0);
  REQUIRE(tls_col >= 0);
  for (int i = 0; i < PQntuples(servers.get()); ++i) {
    const std::string database = PQgetvalue(servers.get(), i, database_col);
    CAPTURE(database);
    if (database == "plain_prefer") CHECK(PQgetisnull(servers.get(), i, tls_col));
    else CHECK(std::string(PQgetvalue(servers.get(), i, tls_col)).starts_with("TLSv1.3/"));
  }

  SUBCASE("a server certificate from another CA is refused") {
    RelayConfig rogue = cfg;
    rogue.set("server_tls_ca_file", quoted(certs().path("rogue-ca.pem")));
    PgrelayProcess other(rogue);
    const std::string refused = connect_error(other.conninfo("byname"));
    CHECK_MESSAGE(contains(refused, "certificate verify failed"), refused);
    CHECK(contains(other.log(), "TLS handshake with localhost:" + std::to_string(pg.port()) + " failed"));
  }
}
