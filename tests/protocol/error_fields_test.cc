// ErrorResponse / NoticeResponse: golden bytes for what pgrelay sends, decoding what servers send.
#include <doctest/doctest.h>

#include <random>

#include "protocol/error_fields.h"
#include "protocol/sqlstate.h"
#include "tests/protocol/test_util.h"

using namespace pgrelay;
using namespace pgrelay::protocol;
using pgrelay::protocol::test::body_of;
using pgrelay::protocol::test::lit;
using pgrelay::protocol::test::str;

TEST_CASE("encode_error_response: golden bytes") {
  Buffer b;
  encode_error_response({"FATAL", "08P01", "bad", "", ""}, b);
  CHECK(str(b) == lit("E\x00\x00\x00\x1f" "SFATAL\0VFATAL\0C08P01\0Mbad\0\0"));
}

TEST_CASE("encode_notice_response: detail and hint when set") {
  Buffer b;
  encode_notice_response({"NOTICE", "00000", "m", "d", "h"}, b);
  CHECK(str(b) == lit("N\x00\x00\x00\x25" "SNOTICE\0VNOTICE\0C00000\0Mm\0Dd\0Hh\0\0"));
}

TEST_CASE("decode_error_notice: round trip and field lookup") {
  Buffer b;
  encode_error_response({"ERROR", "42601", "syntax error at or near \"selec\"", "some detail", "a hint"}, b);
  std::string body = body_of(b);
  auto r = decode_error_notice(as_bytes(body));
  REQUIRE(r.ok());
  CHECK(r->severity == "ERROR");
  CHECK(r->sqlstate == "42601");
  CHECK(r->message == "syntax error at or near \"selec\"");
  CHECK(r->detail == "some detail");
  CHECK(r->hint == "a hint");
  CHECK(r->field('V') == "ERROR");
  CHECK(r->field('P') == "");
  CHECK(r->fields.size() == 6);
  CHECK_FALSE(r->is_fatal());
}

TEST_CASE("decode_error_notice: a server's error with unknown fields, FATAL") {
  // As PostgreSQL 15 sends it for a bad password (fields S V C M F L R).
  // The decoded views point into `body`, so it must outlive `r`.
  const std::string body = lit(
      "SFATAL\0VFATAL\0" "C28P01\0Mpassword authentication failed for user \"x\"\0Fauth.c\0L335\0Rauth_failed\0\0");
  auto r = decode_error_notice(as_bytes(body));
  REQUIRE(r.ok());
  CHECK(r->is_fatal());
  CHECK(r->sqlstate == "28P01");
  CHECK(r->field('L') == "335");
  CHECK(r->field('R') == "auth_failed");
  CHECK(r->detail.empty());
}

TEST_CASE("decode_error_notice: malformed bodies are 08P01") {
  for (std::string bad : {lit(""), lit("SERROR\0"), lit("SERROR"), lit("S"), lit("SERROR\0\0x"), lit("\0\0")}) {
    CAPTURE(bad);
    auto r = decode_error_notice(as_bytes(bad));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sqlstate == sqlstate::kProtocolViolation);
  }
  // Just the terminator: no fields, but well formed.
  auto empty = decode_error_notice(as_bytes(lit("\0")));
  REQUIRE(empty.ok());
  CHECK(empty->fields.empty());
}

TEST_CASE("decode_error_notice: random bytes never crash it") {
  std::mt19937 rng(5802);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string body(rng() % 48, '\0');
    for (auto& c : body) c = (rng() % 3 == 0) ? '\0' : char(rng());
    auto r = decode_error_notice(as_bytes(body));
    if (r.ok()) CHECK(body.back() == '\0');
  }
}

TEST_CASE("is_fatal decides on the non-localized V field when the server sends it") {
  // A German server: S is translated, V is not.
  protocol::Buffer body;
  protocol::Writer w(body);
  w.u8('S'); w.cstr("SCHWERWIEGEND");
  w.u8('V'); w.cstr("FATAL");
  w.u8('C'); w.cstr("57P01");
  w.u8('M'); w.cstr("Verbindung wird abgebrochen");
  w.u8(0);
  auto e = protocol::decode_error_notice(body);
  REQUIRE(e.ok());
  CHECK(e->severity == "SCHWERWIEGEND");
  CHECK(e->severity_code == "FATAL");
  CHECK(e->is_fatal());

  protocol::Buffer old_server;
  protocol::Writer w2(old_server);
  w2.u8('S'); w2.cstr("ERROR");
  w2.u8('M'); w2.cstr("x");
  w2.u8(0);
  auto e2 = protocol::decode_error_notice(old_server);
  REQUIRE(e2.ok());
  CHECK_FALSE(e2->is_fatal());
}
