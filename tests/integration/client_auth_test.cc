// Client authentication end to end: SCRAM-SHA-256, md5, trust, reject, hba rules, auth_file
// (and its reload on SIGHUP), auth_query against the cluster, identical failures for unknown users
// and wrong passwords, and forwarding the client's SCRAM identity to PostgreSQL.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

#include "harness.h"
#include "protocol/md5.h"
#include "protocol/scram.h"

using namespace pgrelay::it;

namespace {

using Clock = std::chrono::steady_clock;

// A directory for auth files, removed at exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/pgrelay-it-auth-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

// Roles this file uses; the cluster trusts them over TCP (only md5_user and scram_user need passwords).
void create_roles() {
  static bool done = false;
  if (done) return;
  Conn c = connect_ok(direct_conninfo());
  for (const char* role : {"ca_trusted", "ca_rejected", "ca_md5", "ca_plain", "ca_reload", "ca_cleartext",
                           "ca_query_ok", "ca_query_expired", "ca_unicode"}) {
    exec(c.get(), std::string("CREATE ROLE ") + role + " LOGIN");   // fails harmlessly when it exists
  }
  REQUIRE(exec(c.get(), "SET password_encryption = 'scram-sha-256'; "
                        "ALTER ROLE ca_query_ok PASSWORD 'querypass' VALID UNTIL 'infinity'; "
                        "ALTER ROLE ca_query_expired PASSWORD 'expiredpass' VALID UNTIL '2000-01-01'")
              .ok());
  done = true;
}

std::string pg_secret(const std::string& role) {
  Conn c = connect_ok(direct_conninfo());
  return scalar(c.get(), "select rolpassword from pg_authid where rolname = '" + role + "'");
}

std::string userlist_line(const std::string& user, const std::string& secret) {
  return "\"" + user + "\" \"" + secret + "\"\n";
}

// The main pgrelay: scram-sha-256 by default, an auth_file, and hba rules for the other methods.
struct Fixture {
  TempDir dir;
  std::unique_ptr<PgrelayProcess> relay;
  Fixture() {
    create_roles();
    write_file(dir.file("users.txt"),
               "; the integration cluster's SCRAM secret, and plain and md5 secrets\n" +
                   userlist_line("scram_user", pg_secret("scram_user")) + userlist_line("md5_user", "md5pass") +
                   userlist_line("ca_plain", "plain pass \"\"quoted\"\"") +
                   userlist_line("ca_md5", pgrelay::protocol::md5_stored_secret("md5secret", "ca_md5")) +
                   userlist_line("ca_cleartext", "cleartext") + userlist_line("ca_trusted", "unused") +
                   userlist_line("ca_unicode", "pa\xcc\x88ss \xe2\x85\xa8"));   // a + U+0308, U+2168
    RelayConfig cfg;
    cfg.set("auth_type", "\"scram-sha-256\"").set("auth_file", "\"" + dir.file("users.txt") + "\"");
    cfg.add_database("md5db", "dbname = \"postgres\"");
    cfg.databases += R"(
[[hba]]
user = "ca_trusted"
method = "trust"

[[hba]]
user = "ca_rejected"
method = "reject"

[[hba]]
database = "md5db"
method = "md5"

[[hba]]
user = "ca_cleartext"
method = "password"

[[hba]]
address = ["127.0.0.0/8", "::1/128"]
database = ["postgres", "ca_other"]
method = "scram-sha-256"
)";
    relay = std::make_unique<PgrelayProcess>(cfg);
  }
};

PgrelayProcess& relay() {
  static Fixture f;
  REQUIRE_MESSAGE(f.relay->running(), "pgrelay is not running; log:\n" << f.relay->log());
  return *f.relay;
}

// One login over the raw protocol, answering SCRAM, MD5 and cleartext requests with `password`:
// every authentication request code seen, and the error if the login failed.
struct Attempt {
  std::vector<int> requests;
  std::optional<ErrorInfo> error;
  bool ok = false;
};

std::string cstr(const std::string& s) { return s + std::string(1, '\0'); }

Attempt raw_login(int port, const std::string& user, const std::string& db, const std::string& password) {
  RawClient c(port);
  c.send(startup_packet({{"user", user}, {"database", db}}));
  Attempt a;
  std::optional<pgrelay::protocol::ScramClient> scram;
  for (int round = 0; round < 8; ++round) {
    bool eof = false;
    auto msgs = c.read_messages_until('R', 10s, &eof);
    if (auto e = first_error(msgs)) {
      a.error = e;
      return a;
    }
    if (msgs.empty() || msgs.back().type != 'R') return a;   // closed without a word
    const std::string& p = msgs.back().payload;
    uint32_t code = load_be32(p.data());
    a.requests.push_back(int(code));
    if (code == 0) {   // AuthenticationOk: the rest of the greeting follows
      auto rest = c.read_messages_until('Z', 10s);
      a.error = first_error(rest);
      a.ok = !a.error && !rest.empty() && rest.back().type == 'Z';
      return a;
    }
    if (code == 10) {
      scram.emplace(password, "rawclientnonce" + std::to_string(round));
      std::string first = scram->client_first_message();
      c.send(typed_message('p', cstr("SCRAM-SHA-256") + be32(uint32_t(first.size())) + first));
    } else if (code == 11) {
      auto final_msg = scram->handle_server_first(p.substr(4));
      REQUIRE(final_msg.ok());
      c.send(typed_message('p', *final_msg));
    } else if (code == 12) {
      CHECK(scram->verify_server_final(p.substr(4)).ok());
    } else if (code == 5) {
      std::array<std::byte, 4> salt;
      std::memcpy(salt.data(), p.data() + 4, 4);
      c.send(typed_message('p', cstr(pgrelay::protocol::md5_password_response(password, user, salt))));
    } else if (code == 3) {
      c.send(typed_message('p', cstr(password)));
    } else {
      FAIL("unexpected authentication request " << code);
    }
  }
  return a;
}

void check_password_failure(const Attempt& a, const std::string& user) {
  REQUIRE_MESSAGE(a.error.has_value(), "no error for " << user);
  CHECK(a.error->severity == "FATAL");
  CHECK(a.error->sqlstate == "28P01");
  CHECK(a.error->message == "password authentication failed for user \"" + user + "\"");
  CHECK_FALSE(a.ok);
}

std::string with_password(const std::string& user, const std::string& password, const std::string& db = "postgres") {
  return relay().conninfo(db, user, "password=" + shell_quote(password));
}

double median_connect_ms(const std::string& conninfo) {
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    auto start = Clock::now();
    Conn c = connect(conninfo);
    CHECK(PQstatus(c.get()) == CONNECTION_BAD);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[2];
}

}  // namespace

TEST_CASE("SCRAM-SHA-256 with a SCRAM secret from the auth_file; the identity is forwarded to PostgreSQL") {
  Attempt a = raw_login(relay().port(), "scram_user", "postgres", "scrampass");
  CHECK(a.ok);
  CHECK(a.requests == std::vector<int>{10, 11, 12, 0});
  // The database entry has no password and the cluster wants SCRAM from scram_user: pgrelay logs
  // in with the ClientKey recovered from the client's proof.
  Conn c = connect_ok(with_password("scram_user", "scrampass"));
  CHECK(scalar(c.get(), "select current_user") == "scram_user");
  CHECK(scalar(c.get(), "select count(*) from pg_stat_activity where pid = pg_backend_pid() and usename = 'scram_user'") ==
        "1");
}

TEST_CASE("psql with PGPASSWORD logs in with SCRAM, and gets PostgreSQL's message for a wrong password") {
  const std::string psql = std::string(PGRELAY_IT_PSQL) + " -X -w -At -h 127.0.0.1 -p " +
                           std::to_string(relay().port()) + " -U scram_user -d postgres -c 'select current_user'";
  auto ok = run_command("PGPASSWORD=scrampass " + psql, 30s);
  CHECK(ok.exit_code == 0);
  CHECK(ok.output == "scram_user\n");
  auto bad = run_command("PGPASSWORD=nope " + psql, 30s);
  CHECK(bad.exit_code != 0);
  CHECK_MESSAGE(bad.output.find("FATAL:  password authentication failed for user \"scram_user\"") != std::string::npos,
                bad.output);
}

TEST_CASE("SCRAM-SHA-256 with plain passwords in the auth_file; the password is forwarded") {
  // md5_user's plain password answers the cluster's md5 challenge for the server connection.
  Conn md5 = connect_ok(with_password("md5_user", "md5pass"));
  CHECK(scalar(md5.get(), "select current_user") == "md5_user");
  Conn plain = connect_ok(with_password("ca_plain", "plain pass \"quoted\""));
  CHECK(scalar(plain.get(), "select current_user") == "ca_plain");
  check_password_failure(raw_login(relay().port(), "ca_plain", "postgres", "plain pass"), "ca_plain");
  // SASLprep (RFC 4013), as PostgreSQL: libpq proves "p\u00e4ss IX" whichever form it was given,
  // so the auth_file's decomposed form must be prepared to the same before it is hashed.
  for (const char* typed : {"p\xc3\xa4ss IX", "pa\xcc\x88ss \xe2\x85\xa8"}) {
    Conn unicode = connect_ok(with_password("ca_unicode", typed));
    CHECK(scalar(unicode.get(), "select current_user") == "ca_unicode");
  }
  check_password_failure(raw_login(relay().port(), "ca_unicode", "postgres", "pass IX"), "ca_unicode");
}

TEST_CASE("md5: an MD5 secret gets an MD5 challenge; a SCRAM secret falls back to SCRAM, as in PostgreSQL") {
  Attempt a = raw_login(relay().port(), "ca_md5", "md5db", "md5secret");
  CHECK(a.ok);
  CHECK(a.requests == std::vector<int>{5, 0});
  Conn c = connect_ok(with_password("ca_md5", "md5secret", "md5db"));
  CHECK(scalar(c.get(), "select current_user") == "ca_md5");
  check_password_failure(raw_login(relay().port(), "ca_md5", "md5db", "wrong"), "ca_md5");

  Attempt fallback = raw_login(relay().port(), "scram_user", "md5db", "scrampass");
  CHECK(fallback.ok);
  CHECK(fallback.requests == std::vector<int>{10, 11, 12, 0});
  // A plain secret can answer either; md5 is what the rule asks for.
  Attempt plain = raw_login(relay().port(), "md5_user", "md5db", "md5pass");
  CHECK(plain.ok);
  CHECK(plain.requests == std::vector<int>{5, 0});
}

TEST_CASE("trust: no password asked") {
  Attempt a = raw_login(relay().port(), "ca_trusted", "postgres", "");
  CHECK(a.ok);
  CHECK(a.requests == std::vector<int>{0});
  Conn c = connect_ok(relay().conninfo("postgres", "ca_trusted"));
  CHECK(scalar(c.get(), "select current_user") == "ca_trusted");
}

TEST_CASE("reject rule, no matching rule, password without TLS: 28000 in PostgreSQL's words") {
  Attempt rejected = raw_login(relay().port(), "ca_rejected", "postgres", "");
  REQUIRE(rejected.error.has_value());
  CHECK(rejected.requests.empty());
  CHECK(rejected.error->severity == "FATAL");
  CHECK(rejected.error->sqlstate == "28000");
  CHECK(rejected.error->message ==
        "pgrelay hba rule 2 rejects connection for host \"127.0.0.1\", user \"ca_rejected\", database \"postgres\", "
        "no encryption");

  Attempt unmatched = raw_login(relay().port(), "scram_user", "otherdb", "scrampass");
  REQUIRE(unmatched.error.has_value());
  CHECK(unmatched.requests.empty());
  CHECK(unmatched.error->sqlstate == "28000");
  CHECK(unmatched.error->message ==
        "no pgrelay hba rule for host \"127.0.0.1\", user \"scram_user\", database \"otherdb\", no encryption");

  Attempt cleartext = raw_login(relay().port(), "ca_cleartext", "postgres", "cleartext");
  REQUIRE(cleartext.error.has_value());
  CHECK(cleartext.requests.empty());   // the password is never asked for in plain text
  CHECK(cleartext.error->sqlstate == "28000");
  CHECK(cleartext.error->message.find("pgrelay hba rule 4 allows method \"password\" only over TLS") == 0);

  Conn c = connect(relay().conninfo("postgres", "ca_rejected"));
  CHECK(PQstatus(c.get()) == CONNECTION_BAD);
  CHECK(std::string(PQerrorMessage(c.get())).find("pgrelay hba rule 2 rejects connection") != std::string::npos);
  CHECK(relay().log().find("pgrelay hba rule 2 rejects connection for host \"127.0.0.1\", user \"ca_rejected\"") !=
        std::string::npos);
}

TEST_CASE("unknown user and wrong password: the same exchange, the same error, a similar time") {
  Attempt wrong = raw_login(relay().port(), "scram_user", "postgres", "not-the-password");
  Attempt unknown = raw_login(relay().port(), "ca_nobody", "postgres", "whatever");
  check_password_failure(wrong, "scram_user");
  check_password_failure(unknown, "ca_nobody");
  CHECK(wrong.requests == std::vector<int>{10, 11});
  CHECK(unknown.requests == wrong.requests);
  // Every field but the message (which names the user) is identical.
  auto fields_without_message = [](ErrorInfo e) {
    e.fields.erase('M');
    return e.fields;
  };
  CHECK(fields_without_message(*wrong.error) == fields_without_message(*unknown.error));
  // Under an md5 rule an unknown user gets the MD5 challenge and the same failure.
  check_password_failure(raw_login(relay().port(), "ca_nobody", "md5db", "x"), "ca_nobody");

  const double wrong_ms = median_connect_ms(with_password("scram_user", "not-the-password"));
  const double unknown_ms = median_connect_ms(with_password("ca_nobody", "whatever"));
  MESSAGE("median login failure: wrong password " << wrong_ms << " ms, unknown user " << unknown_ms << " ms");
  CHECK(unknown_ms < 3 * wrong_ms + 20);
  CHECK(wrong_ms < 3 * unknown_ms + 20);

  // Counted and logged with the client's address and the reason only the log gets.
  const std::string log = relay().log();
  CHECK(log.find("127.0.0.1") != std::string::npos);
  CHECK(log.find("password authentication failed for user \"ca_nobody\"") != std::string::npos);
  CHECK(log.find("no such user") != std::string::npos);
  CHECK(log.find("wrong password (SCRAM proof does not match)") != std::string::npos);
}

TEST_CASE("auth_query: secrets read from the cluster as auth_user; expired roles fail as unknown ones") {
  create_roles();
  RelayConfig cfg;
  cfg.set("auth_type", "\"scram-sha-256\"").set("auth_user", "\"postgres\"").set("auth_cache_ttl", "\"1s\"");
  PgrelayProcess relay(cfg);
  auto info = [&](const std::string& user, const std::string& password) {
    return relay.conninfo("postgres", user, "password=" + shell_quote(password));
  };

  Conn ok = connect_ok(info("ca_query_ok", "querypass"));
  CHECK(scalar(ok.get(), "select current_user") == "ca_query_ok");
  // scram_user's secret from pg_authid also lets pgrelay log in to the SCRAM-only role for it.
  Conn scram = connect_ok(info("scram_user", "scrampass"));
  CHECK(scalar(scram.get(), "select current_user") == "scram_user");

  check_password_failure(raw_login(relay.port(), "ca_query_ok", "postgres", "wrong"), "ca_query_ok");
  check_password_failure(raw_login(relay.port(), "ca_query_expired", "postgres", "expiredpass"), "ca_query_expired");
  check_password_failure(raw_login(relay.port(), "ca_query_nobody", "postgres", "x"), "ca_query_nobody");
  // postgres has no password in the cluster: nobody can log in as it through auth_query.
  check_password_failure(raw_login(relay.port(), "postgres", "postgres", ""), "postgres");

  // A changed password is seen once the cached answer is older than auth_cache_ttl.
  Conn admin = connect_ok(direct_conninfo());
  REQUIRE(exec(admin.get(), "ALTER ROLE ca_query_ok PASSWORD 'querypass2'").ok());
  std::this_thread::sleep_for(1200ms);
  Conn changed = connect_ok(info("ca_query_ok", "querypass2"));
  CHECK(scalar(changed.get(), "select 1") == "1");
  check_password_failure(raw_login(relay.port(), "ca_query_ok", "postgres", "querypass"), "ca_query_ok");
  REQUIRE(exec(admin.get(), "ALTER ROLE ca_query_ok PASSWORD 'querypass'").ok());
}

TEST_CASE("a changed auth_file is picked up on SIGHUP; a broken one keeps the old") {
  create_roles();
  TempDir dir;
  const std::string users = dir.file("users.txt");
  write_file(users, userlist_line("ca_reload", "old"));
  RelayConfig cfg;
  cfg.set("auth_type", "\"scram-sha-256\"").set("auth_file", "\"" + users + "\"");
  PgrelayProcess relay(cfg);
  CHECK(raw_login(relay.port(), "ca_reload", "postgres", "old").ok);

  auto reloads = [&] {
    const std::string log = relay.log();
    size_t n = 0;
    for (size_t pos = 0; (pos = log.find("configuration reloaded", pos)) != std::string::npos; ++pos) ++n;
    return n;
  };
  write_file(users, userlist_line("ca_reload", "new"));
  relay.signal(SIGHUP);
  for (int i = 0; i < 100 && reloads() < 1; ++i) std::this_thread::sleep_for(50ms);
  REQUIRE_MESSAGE(reloads() == 1, relay.log());
  check_password_failure(raw_login(relay.port(), "ca_reload", "postgres", "old"), "ca_reload");
  Conn c = connect_ok(relay.conninfo("postgres", "ca_reload", "password=new"));
  CHECK(scalar(c.get(), "select current_user") == "ca_reload");

  write_file(users, "\"ca_reload\" unquoted\n");
  relay.signal(SIGHUP);
  for (int i = 0; i < 100 && relay.log().find("reload failed") == std::string::npos; ++i) std::this_thread::sleep_for(50ms);
  CHECK(relay.log().find(users + ":1: expected a quoted secret") != std::string::npos);
  CHECK(raw_login(relay.port(), "ca_reload", "postgres", "new").ok);
}

TEST_CASE("a client SCRAM secret that is not the server's: the server login fails at once, and says why") {
  TempDir dir;
  // The right password, another salt: the client proves it to pgrelay, but its ClientKey cannot
  // log in to PostgreSQL, whose secret has another salt.
  write_file(dir.file("users.txt"),
             userlist_line("scram_user", pgrelay::protocol::scram_build_secret("scrampass", "another salt", 4096)));
  RelayConfig cfg;
  cfg.set("auth_type", "\"scram-sha-256\"").set("auth_file", "\"" + dir.file("users.txt") + "\"");
  PgrelayProcess relay(cfg);
  auto start = Clock::now();
  Conn c = connect(relay.conninfo("postgres", "scram_user", "password=scrampass"));
  CHECK(PQstatus(c.get()) == CONNECTION_BAD);
  CHECK_MESSAGE(std::string(PQerrorMessage(c.get())).find("salt or iteration count") != std::string::npos,
                PQerrorMessage(c.get()));
  CHECK(Clock::now() - start < 3s);   // not retried for server_login_retry: it cannot get better
}

TEST_CASE("without a forwarded identity the SCRAM-only role cannot be reached (what forwarding fixes)") {
  RelayConfig cfg;   // auth_type = "trust": the client proves nothing, so pgrelay has nothing to forward
  PgrelayProcess relay(cfg);
  Conn c = connect(relay.conninfo("postgres", "scram_user"));
  CHECK(PQstatus(c.get()) == CONNECTION_BAD);
  CHECK_MESSAGE(std::string(PQerrorMessage(c.get())).find("asked for a password") != std::string::npos,
                PQerrorMessage(c.get()));
}
