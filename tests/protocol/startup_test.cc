// Startup-phase packets: golden bytes, round trips, every malformed shape, random bytes.
#include <doctest/doctest.h>

#include <random>

#include "protocol/sqlstate.h"
#include "protocol/startup.h"
#include "tests/protocol/test_util.h"

using namespace pgrelay;
using namespace pgrelay::protocol;
using pgrelay::protocol::test::lit;
using pgrelay::protocol::test::str;

namespace {

// Prepends a correct length field to `rest` (code + body).
std::string packet(std::string_view rest) {
  uint32_t n = uint32_t(rest.size() + 4);
  std::string out{char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
  return out.append(rest);
}

std::string decode_error(std::string_view packet) {
  auto r = decode_startup_packet(as_bytes(packet));
  return r.ok() ? std::string() : r.error().sqlstate;
}

}  // namespace

TEST_CASE("StartupMessage: golden bytes and round trip") {
  StartupMessage m;
  m.params = {{"user", "alice"}, {"database", "db"}};
  Buffer b;
  encode(m, b);
  const std::string golden = lit("\x00\x00\x00\x20" "\x00\x03\x00\x00" "user\0alice\0database\0db\0\0");
  CHECK(str(b) == golden);

  auto len = startup_packet_length(Bytes(b).first(4));
  REQUIRE(len.ok());
  CHECK(*len == golden.size());

  auto r = decode_startup_packet(b);
  REQUIRE(r.ok());
  auto* s = std::get_if<StartupMessage>(&*r);
  REQUIRE(s != nullptr);
  CHECK(s->major == 3);
  CHECK(s->minor == 0);
  REQUIRE(s->params.size() == 2);
  CHECK(*s->get("user") == "alice");
  CHECK(*s->get("database") == "db");
  CHECK(s->get("options") == nullptr);
}

TEST_CASE("StartupMessage: minor versions are returned as sent; empty values are allowed") {
  auto r = decode_startup_packet(as_bytes(packet(lit("\x00\x03\x00\x02user\0u\0options\0\0\0"))));
  REQUIRE(r.ok());
  auto& s = std::get<StartupMessage>(*r);
  CHECK(s.minor == 2);
  CHECK(*s.get("options") == "");
}

TEST_CASE("StartupMessage: errors") {
  // Major version 2 and 1234.5681 (an unknown special code) are unsupported protocols.
  auto v2 = decode_startup_packet(as_bytes(packet(lit("\x00\x02\x00\x00user\0u\0\0"))));
  REQUIRE_FALSE(v2.ok());
  CHECK(v2.error().sqlstate == sqlstate::kFeatureNotSupported);
  CHECK(v2.error().message == "unsupported frontend protocol 2.0: server supports 3.0 to 3.0");
  CHECK(decode_error(lit("\x00\x00\x00\x08\x04\xd2\x16\x31")) == sqlstate::kFeatureNotSupported);

  // Missing final terminator, missing value terminator, trailing bytes after the terminator.
  CHECK(decode_error(packet(lit("\x00\x03\x00\x00user\0u\0"))) == sqlstate::kProtocolViolation);
  CHECK(decode_error(packet(lit("\x00\x03\x00\x00user\0u"))) == sqlstate::kProtocolViolation);
  CHECK(decode_error(packet(lit("\x00\x03\x00\x00user"))) == sqlstate::kProtocolViolation);
  CHECK(decode_error(packet(lit("\x00\x03\x00\x00user\0u\0\0x"))) == sqlstate::kProtocolViolation);
  CHECK(decode_error(packet(lit("\x00\x03\x00\x00"))) == sqlstate::kProtocolViolation);
  // Duplicate names, and no user (or an empty one).
  CHECK(decode_error(packet(lit("\x00\x03\x00\x00user\0u\0user\0v\0\0"))) == sqlstate::kProtocolViolation);
  CHECK(decode_error(packet(lit("\x00\x03\x00\x00database\0d\0\0"))) == sqlstate::kProtocolViolation);
  CHECK(decode_error(packet(lit("\x00\x03\x00\x00user\0\0\0"))) == sqlstate::kProtocolViolation);
  // Length field disagrees with the packet; packet shorter than length + code.
  CHECK(decode_error(lit("\x00\x00\x00\x20\x00\x03\x00\x00user\0u\0\0")) == sqlstate::kProtocolViolation);
  CHECK(decode_error(lit("\x00\x00\x00\x04")) == sqlstate::kProtocolViolation);
  CHECK(decode_error("") == sqlstate::kProtocolViolation);
}

TEST_CASE("SSLRequest, GSSENCRequest, CancelRequest: golden bytes, round trips, fixed lengths") {
  Buffer ssl, gss, cancel;
  encode(SslRequest{}, ssl);
  encode(GssEncRequest{}, gss);
  encode(CancelRequest{1234, -559038737}, cancel);
  CHECK(str(ssl) == lit("\x00\x00\x00\x08\x04\xd2\x16\x2f"));
  CHECK(str(gss) == lit("\x00\x00\x00\x08\x04\xd2\x16\x30"));
  CHECK(str(cancel) == lit("\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x04\xd2\xde\xad\xbe\xef"));

  auto s = decode_startup_packet(ssl);
  REQUIRE(s.ok());
  CHECK(std::holds_alternative<SslRequest>(*s));
  auto g = decode_startup_packet(gss);
  REQUIRE(g.ok());
  CHECK(std::holds_alternative<GssEncRequest>(*g));
  auto c = decode_startup_packet(cancel);
  REQUIRE(c.ok());
  auto& cr = std::get<CancelRequest>(*c);
  CHECK(cr.pid == 1234);
  CHECK(cr.secret == -559038737);

  // Wrong fixed lengths, length field consistent with the packet.
  CHECK(decode_error(lit("\x00\x00\x00\x09\x04\xd2\x16\x2f\x00")) == sqlstate::kProtocolViolation);
  CHECK(decode_error(lit("\x00\x00\x00\x0c\x04\xd2\x16\x30\x00\x00\x00\x00")) == sqlstate::kProtocolViolation);
  CHECK(decode_error(lit("\x00\x00\x00\x0c\x04\xd2\x16\x2e\x00\x00\x04\xd2")) == sqlstate::kProtocolViolation);
  CHECK(decode_error(lit("\x00\x00\x00\x14\x04\xd2\x16\x2e\x00\x00\x04\xd2\xde\xad\xbe\xef\x00\x00\x00\x00")) ==
        sqlstate::kProtocolViolation);
}

TEST_CASE("startup_packet_length: bounds") {
  CHECK(startup_packet_length(as_bytes(lit("\x00\x00\x00\x08"))).ok());
  CHECK_FALSE(startup_packet_length(as_bytes(lit("\x00\x00\x00\x07"))).ok());
  CHECK_FALSE(startup_packet_length(as_bytes(lit("\x00\x00\x00\x00"))).ok());
  CHECK_FALSE(startup_packet_length(as_bytes(lit("\xff\xff\xff\xff"))).ok());
  CHECK(startup_packet_length(as_bytes(lit("\x00\x00\x28\x00"))).ok());          // 10 KiB
  CHECK_FALSE(startup_packet_length(as_bytes(lit("\x00\x00\x28\x01"))).ok());
  CHECK(startup_packet_length(as_bytes(lit("\x00\x01\x00\x00")), 1u << 16).ok());
  CHECK_FALSE(startup_packet_length(as_bytes(lit("\x00\x00\x00"))).ok());
  auto e = startup_packet_length(as_bytes(lit("\x00\x00\x00\x07")));
  CHECK(e.error().sqlstate == sqlstate::kProtocolViolation);
  auto big = startup_packet_length(as_bytes(lit("\x00\x00\x28\x01")));
  CHECK(big.error().sqlstate == sqlstate::kProtocolViolation);
  CHECK(big.error().message == "startup packet too large: 10241 bytes (limit 10240)");
}

TEST_CASE("decode_startup_packet: random bytes never crash it (Envoy's StartupMessageRandomData)") {
  std::mt19937 rng(7677);
  int ok = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string p(rng() % 64, '\0');
    for (auto& c : p) {
      // Mostly letters and NULs, so some packets get deep into the parameter list.
      uint32_t x = rng();
      c = (x % 4 == 0) ? '\0' : (x % 4 == 1) ? char(x >> 8) : char('a' + (x >> 8) % 26);
    }
    if (p.size() >= 8) {
      // A consistent length field and a valid version half the time.
      p[0] = p[1] = '\0';
      p[2] = char(p.size() >> 8);
      p[3] = char(p.size());
      if (iter % 2) {
        p[4] = '\0'; p[5] = '\3'; p[6] = '\0'; p[7] = '\0';
        if (iter % 4 == 1 && p.size() >= 15) p.replace(8, 7, std::string("user\0u\0", 7));
      }
    }
    auto r = decode_startup_packet(as_bytes(p));
    if (r.ok()) {
      ++ok;
      // Whatever decodes must re-encode to the same bytes.
      Buffer again;
      std::visit([&](const auto& m) { encode(m, again); }, *r);
      CHECK(str(again) == p);
    } else {
      CHECK(!r.error().message.empty());
    }
    (void)startup_packet_length(as_bytes(p));
  }
  MESSAGE("random startup packets accepted: " << ok);
}
