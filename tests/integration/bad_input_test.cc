// Bad and hostile client input: each gets an ErrorResponse with the right SQLSTATE, then the
// connection closes, and a client connected at the same time is not disturbed.
#include <doctest/doctest.h>

#include <random>
#include <thread>

#include "harness.h"

using namespace pgrelay::it;

namespace {

// No "*" entry (unknown databases are refused); "down" points at a port nobody listens on.
PgrelayProcess& relay() {
  static PgrelayProcess p([] {
    RelayConfig cfg;
    cfg.without_databases()
        .add_database("postgres", "")
        .add_database("down", "port = " + std::to_string(closed_port()) + "\ndbname = \"postgres\"")
        .set("client_login_timeout", "\"1s\"");
    return cfg;
  }());
  REQUIRE_MESSAGE(p.running(), "pgrelay is not running; log:\n" << p.log());
  return p;
}

// A client logged in before the bad input arrives; it must still work afterwards, and so must a new one.
struct Bystander {
  Conn conn = connect_ok(relay().conninfo());
  Bystander() { REQUIRE(scalar(conn.get(), "select 1") == "1"); }
  void check() {
    CHECK(relay().running());
    CHECK(scalar(conn.get(), "select 1") == "1");
    Conn fresh = connect_ok(relay().conninfo());
    CHECK(scalar(fresh.get(), "select 1") == "1");
  }
};

// Reads until the server closes the connection; expects a FATAL ErrorResponse in what came.
ErrorInfo expect_fatal_then_close(RawClient& c, Millis timeout = 5s) {
  bool eof = false;
  std::string bytes = c.read_until_eof(timeout, &eof);
  CHECK_MESSAGE(eof, "the connection was not closed after the error");
  auto err = first_error(bytes);
  REQUIRE_MESSAGE(err.has_value(), "no ErrorResponse in the " << bytes.size() << " bytes received");
  CHECK(err->severity == "FATAL");
  return *err;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("unknown database: 3D000") {
  Bystander other;
  RawClient c(relay().port());
  c.send(startup_packet({{"user", "postgres"}, {"database", "nosuchdb"}}));
  auto err = expect_fatal_then_close(c);
  CHECK(err.sqlstate == "3D000");
  CHECK(err.message == "no such database: nosuchdb");

  Conn viaLibpq = connect(relay().conninfo("nosuchdb"));
  CHECK(PQstatus(viaLibpq.get()) == CONNECTION_BAD);
  CHECK(std::string(PQerrorMessage(viaLibpq.get())).find("no such database: nosuchdb") != std::string::npos);
  other.check();
}

TEST_CASE("more than max_client_conn clients: 53300") {
  RelayConfig cfg;
  cfg.set("max_client_conn", "3");
  PgrelayProcess own(cfg);
  std::vector<Conn> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(connect_ok(own.conninfo()));
    REQUIRE(scalar(held.back().get(), "select 1") == "1");
  }
  RawClient c(own.port());
  c.send(startup_packet({{"user", "postgres"}, {"database", "postgres"}}));
  auto err = expect_fatal_then_close(c);
  CHECK(err.sqlstate == "53300");
  CHECK(err.message == "no more connections allowed (max_client_conn)");

  for (auto& h : held) CHECK(scalar(h.get(), "select 1") == "1");
  // A freed slot is usable again (the disconnect is noticed asynchronously).
  held.pop_back();
  bool admitted = false;
  for (int attempt = 0; attempt < 20 && !admitted; ++attempt) {
    Conn again = connect(own.conninfo());
    admitted = PQstatus(again.get()) == CONNECTION_OK && scalar(again.get(), "select 1") == "1";
    if (!admitted) std::this_thread::sleep_for(100ms);
  }
  CHECK(admitted);
}

TEST_CASE("startup packet over 10240 bytes: 08P01") {
  Bystander other;
  SUBCASE("whole packet sent") {
    RawClient c(relay().port());
    std::string pkt = startup_packet({{"user", "postgres"}, {"database", "postgres"}, {"options", std::string(11000, 'o')}});
    REQUIRE(pkt.size() > 10240);
    c.send(pkt);
    auto err = expect_fatal_then_close(c);
    CHECK(err.sqlstate == "08P01");
    CHECK_MESSAGE(starts_with(err.message, "startup packet too large"), err.message);
  }
  SUBCASE("only the length arrives: refused without waiting for the body") {
    RawClient c(relay().port());
    c.send(be32(10241) + be32(196608));
    auto err = expect_fatal_then_close(c, 900ms);  // before client_login_timeout (1s)
    CHECK(err.sqlstate == "08P01");
    CHECK_MESSAGE(starts_with(err.message, "startup packet too large"), err.message);
  }
  SUBCASE("a huge declared length") {
    RawClient c(relay().port());
    c.send(be32(0x7fffffff) + be32(196608));
    auto err = expect_fatal_then_close(c, 900ms);
    CHECK(err.sqlstate == "08P01");
    CHECK_MESSAGE(starts_with(err.message, "startup packet too large"), err.message);
  }
  other.check();
}

TEST_CASE("malformed startup packet: 08P01") {
  Bystander other;
  std::string bytes;
  SUBCASE("length 4") { bytes = be32(4); }
  SUBCASE("length 7") { bytes = be32(7) + std::string(3, '\0'); }
  SUBCASE("parameter list without terminator") {
    std::string body = be32(196608) + std::string("user\0postgres\0database\0postgres", 31);
    bytes = be32(static_cast<uint32_t>(body.size() + 4)) + body;
  }
  SUBCASE("parameter name without value") {
    std::string body = be32(196608) + std::string("user\0postgres\0database\0", 23);
    bytes = be32(static_cast<uint32_t>(body.size() + 4)) + body;
  }
  SUBCASE("missing user") { bytes = startup_packet({{"database", "postgres"}}); }
  RawClient c(relay().port());
  c.send(bytes);
  auto err = expect_fatal_then_close(c, 900ms);
  CHECK(err.sqlstate == "08P01");
  other.check();
}

TEST_CASE("unsupported protocol version 2.0: 0A000") {
  Bystander other;
  RawClient c(relay().port());
  c.send(startup_packet({{"user", "postgres"}, {"database", "postgres"}}, 2u << 16));
  auto err = expect_fatal_then_close(c);
  CHECK(err.sqlstate == "0A000");
  other.check();
}

TEST_CASE("typed message length below 4 after login: 08P01") {
  Bystander other;
  RawClient c(relay().port());
  raw_login(c);
  c.send(std::string("Q") + be32(3));
  auto err = expect_fatal_then_close(c);
  CHECK(err.sqlstate == "08P01");
  other.check();
}

TEST_CASE("typed message over max_message_size after login: 54000") {
  Bystander other;
  RawClient c(relay().port());
  raw_login(c);
  c.send(std::string("Q") + be32(1u << 30) + "select ");  // 1 GiB declared, default limit 256 MiB
  auto err = expect_fatal_then_close(c);
  CHECK(err.sqlstate == "54000");
  other.check();
}

TEST_CASE("unknown frontend message type after login: 08P01") {
  Bystander other;
  RawClient c(relay().port());
  raw_login(c);
  c.send(typed_message('z', ""));
  auto err = expect_fatal_then_close(c);
  CHECK(err.sqlstate == "08P01");
  CHECK_MESSAGE(err.message.find("invalid frontend message type") != std::string::npos, err.message);
  other.check();
}

TEST_CASE("client_login_timeout: 08P01 and close") {
  Bystander other;
  std::string sent;
  SUBCASE("sends nothing") {}
  SUBCASE("sends half a startup packet") { sent = be32(40).substr(0, 3); }
  SUBCASE("sends SSLRequest, then nothing") { sent = ssl_request(); }
  RawClient c(relay().port());
  auto start = std::chrono::steady_clock::now();
  c.send(sent);
  bool eof = false;
  std::string bytes = c.read_until_eof(5s, &eof);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(eof);
  CHECK(elapsed >= 800ms);
  CHECK(elapsed <= 3s);
  if (!sent.empty() && sent.size() == 8) {  // SSLRequest: 'N' first
    REQUIRE(!bytes.empty());
    CHECK(bytes[0] == 'N');
    bytes.erase(0, 1);
  }
  auto err = first_error(bytes);
  REQUIRE_MESSAGE(err.has_value(), "no ErrorResponse before the close");
  CHECK(err->sqlstate == "08P01");
  CHECK_MESSAGE(err->message.find("client_login_timeout") != std::string::npos, err->message);
  other.check();
}

TEST_CASE("backend down: 08006") {
  Bystander other;
  RawClient c(relay().port());
  c.send(startup_packet({{"user", "postgres"}, {"database", "down"}}));
  // pgrelay may report the failure at login, or accept the login and fail the first query.
  auto msgs = c.read_messages_until('Z', 10s);
  if (!msgs.empty() && msgs.back().type == 'Z') c.send(query_message("select 1"));
  bool eof = false;
  std::string rest = c.read_until_eof(10s, &eof);
  CHECK(eof);
  auto err = first_error(msgs);
  if (!err) err = first_error(rest);
  REQUIRE_MESSAGE(err.has_value(), "no ErrorResponse");
  CHECK(err->sqlstate == "08006");
  CHECK_MESSAGE(starts_with(err->message, "server connection failed:"), err->message);
  CHECK(err->severity == "FATAL");
  other.check();
}

TEST_CASE("SSLRequest and GSSENCRequest are answered 'N', then startup proceeds") {
  Bystander other;
  std::vector<std::string> requests;
  SUBCASE("SSLRequest") { requests = {ssl_request()}; }
  SUBCASE("GSSENCRequest") { requests = {gssenc_request()}; }
  SUBCASE("GSSENCRequest then SSLRequest, as libpq falls back") { requests = {gssenc_request(), ssl_request()}; }
  RawClient c(relay().port());
  for (const auto& r : requests) {
    REQUIRE(c.send(r));
    REQUIRE(c.read_exact(1, 5s) == "N");
  }
  raw_login(c);
  c.send(query_message("select 'tls-free'"));
  auto reply = c.read_messages_until('Z', 5s);
  bool saw = false;
  for (const auto& m : reply) saw = saw || (m.type == 'D' && m.payload.find("tls-free") != std::string::npos);
  CHECK(saw);

  Conn prefer = connect_ok(relay().conninfo("postgres", "postgres", "sslmode=prefer"));
  CHECK(PQsslInUse(prefer.get()) == 0);
  CHECK(scalar(prefer.get(), "select 1") == "1");
  other.check();
}

TEST_CASE("random bytes never take pgrelay down") {
  Bystander other;
  std::mt19937 rng(12345);
  for (int i = 0; i < 40; ++i) {
    RawClient c(relay().port());
    std::string junk(1 + rng() % 300, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    if (i % 2 == 1) junk = startup_packet({{"user", "postgres"}, {"database", "postgres"}}) + junk;
    c.send(junk);
    c.read_until_eof(50ms);
  }
  other.check();
}

TEST_CASE("a client that vanishes mid-query does not disturb others") {
  Bystander other;
  for (int i = 0; i < 5; ++i) {
    RawClient c(relay().port());
    raw_login(c);
    c.send(query_message("select pg_sleep(0.3), repeat('x', 100000) from generate_series(1, 50)"));
  }
  std::this_thread::sleep_for(500ms);
  other.check();
}

TEST_CASE("a startup packet cannot forge a log line: control characters and bytes that are not UTF-8 are escaped") {
  Bystander other;
  const std::string forged = "2026-12-03 00:00:00.000 UTC INFO admin login ok for user \"root\"";
  {
    RawClient c(relay().port());
    REQUIRE(c.send(startup_packet({{"user", "postgres"}, {"database", "x\n" + forged}})));
    CHECK(expect_fatal_then_close(c).sqlstate == "3D000");   // logged with the name in it
  }
  {
    RawClient c(relay().port());
    REQUIRE(c.send(startup_packet({{"user", "postgres"}, {"database", "y\r\x1b[2J\xff\xfe"}})));
    CHECK(expect_fatal_then_close(c).sqlstate == "3D000");
  }
  const std::string log = relay().log();
  CHECK(log.find("\n" + forged) == std::string::npos);      // no line of its own
  CHECK(log.find("x\\n" + forged) != std::string::npos);    // but there, escaped, in the line that names it
  CHECK(log.find("y\\r\\x1b[2J\\xff\\xfe") != std::string::npos);
  CHECK(log.find('\x1b') == std::string::npos);
  CHECK(log.find('\xff') == std::string::npos);
  CHECK(log.find('\r') == std::string::npos);
  other.check();
}
