// SCRAM-SHA-256 and MD5 math against published vectors and secrets made by a real PostgreSQL 15.
#include <doctest/doctest.h>

#include <string>

#include "protocol/md5.h"
#include "protocol/scram.h"
#include "protocol/sqlstate.h"

using namespace pgrelay;
using namespace pgrelay::protocol;

namespace {

constexpr std::string_view kRfcNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

}  // namespace

TEST_CASE("SCRAM: RFC 7677 test vector, verbatim (user \"user\")") {
  ScramClient c("pencil", std::string(kRfcNonce), "user");
  CHECK(c.client_first_message() == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  auto final_msg = c.handle_server_first(kRfcServerFirst);
  REQUIRE(final_msg.ok());
  CHECK(*final_msg ==
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  CHECK(c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").ok());
}

TEST_CASE("SCRAM: PostgreSQL form (empty user) with the RFC nonces") {
  // Expected values computed independently with Python's hashlib/hmac over "n=,r=...".
  ScramClient c("pencil", std::string(kRfcNonce));
  CHECK(c.client_first_message() == "n,,n=,r=rOprNGfwEbeRWgbNEkqO");
  auto final_msg = c.handle_server_first(kRfcServerFirst);
  REQUIRE(final_msg.ok());
  CHECK(*final_msg ==
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k=");
  CHECK(c.verify_server_final("v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg=").ok());

  SUBCASE("a wrong signature is 28000") {
    auto r = c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sqlstate == sqlstate::kInvalidAuthorization);
  }
  SUBCASE("a short signature is rejected, not compared past its end") {
    CHECK_FALSE(c.verify_server_final("v=3HO6Qt1M").ok());
  }
  SUBCASE("a server error is reported") {
    auto r = c.verify_server_final("e=invalid-proof");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sqlstate == sqlstate::kInvalidAuthorization);
    CHECK(r.error().message.find("invalid-proof") != std::string::npos);
  }
  SUBCASE("garbage") {
    CHECK_FALSE(c.verify_server_final("").ok());
    CHECK_FALSE(c.verify_server_final("x=1").ok());
    CHECK_FALSE(c.verify_server_final("v=!!!!").ok());
  }
}

TEST_CASE("SCRAM: wrong password gives a different proof and fails verification") {
  ScramClient c("pencil2", std::string(kRfcNonce), "user");
  auto final_msg = c.handle_server_first(kRfcServerFirst);
  REQUIRE(final_msg.ok());
  CHECK(final_msg->find("p=dHzbZapWIk4jUhN") == std::string::npos);
  CHECK_FALSE(c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").ok());
}

TEST_CASE("SCRAM: server-first validation") {
  auto reject = [](std::string_view server_first) {
    ScramClient c("pencil", std::string(kRfcNonce));
    auto r = c.handle_server_first(server_first);
    if (r.ok()) return std::string();
    return r.error().sqlstate;
  };
  // The nonce must extend ours, strictly.
  CHECK(reject("r=XXXXNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") == sqlstate::kInvalidAuthorization);
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") == sqlstate::kInvalidAuthorization);
  CHECK(reject("r=rOprNGfwEbe,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") == sqlstate::kInvalidAuthorization);
  // Salt, iterations, order, mandatory extensions.
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=not base64,i=4096") == sqlstate::kProtocolViolation);
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096") == sqlstate::kProtocolViolation);
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0") == sqlstate::kProtocolViolation);
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1") == sqlstate::kProtocolViolation);
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999") == sqlstate::kProtocolViolation);
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=") == sqlstate::kProtocolViolation);
  CHECK(reject("s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOx,i=4096") == sqlstate::kProtocolViolation);
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==") == sqlstate::kProtocolViolation);
  CHECK(reject("m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1") == sqlstate::kFeatureNotSupported);
  CHECK(reject("") == sqlstate::kProtocolViolation);
  // Extensions after i= are allowed.
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1,x=y").empty());
  // An absurd iteration count is refused before any is computed (a minute of HMACs at 2^31).
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2147483647") == sqlstate::kProgramLimitExceeded);
  CHECK(reject("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001") == sqlstate::kProgramLimitExceeded);
  ScramClient c("pencil", std::string(kRfcNonce));
  auto r = c.handle_server_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=5000000");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("5000000 SCRAM iterations") != std::string::npos);
}

TEST_CASE("SCRAM: verify_server_final before handle_server_first is an error") {
  ScramClient c("pencil", "abc");
  CHECK_FALSE(c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").ok());
}

TEST_CASE("SCRAM: user names are escaped as RFC 5802 saslname") {
  ScramClient c("p", "n", "a,b=c");
  CHECK(c.client_first_message() == "n,,n=a=2Cb=3Dc,r=n");
}

TEST_CASE("SCRAM: scram_build_secret matches secrets made by PostgreSQL 15") {
  // SET password_encryption='scram-sha-256'; CREATE ROLE x PASSWORD 'p'; -- then pg_authid.rolpassword
  auto salt = base64_decode("jcftb0KzH4PbDjM7PTpRRg==");
  REQUIRE(salt.ok());
  CHECK(scram_build_secret("p", *salt, 4096) ==
        "SCRAM-SHA-256$4096:jcftb0KzH4PbDjM7PTpRRg==$3amEBVlep3NEz36KVFnPN/zoQ1mvTmWcr0EP6eO706I=:"
        "DQ5kiRz+KPPULoNONwb9/6UTvgW8XLci2vHbpGIKm4M=");
  auto salt2 = base64_decode("E7dd+2svjIxCPV8wB2ttNQ==");
  REQUIRE(salt2.ok());
  CHECK(scram_build_secret("pencil", *salt2, 4096) ==
        "SCRAM-SHA-256$4096:E7dd+2svjIxCPV8wB2ttNQ==$YBbwqxxxYaI66bb5y/LAZcU/R2aHMpH7GnHaZKfNF04=:"
        "0X7vgNrbW1U0TQ4U1r4Z2j/GNo/vKjqHgkEnlBMTskY=");
}

TEST_CASE("base64: RFC 4648 vectors and strict decoding") {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (auto [raw, text] : vectors) {
    CHECK(base64_encode(raw) == text);
    auto d = base64_decode(text);
    REQUIRE(d.ok());
    CHECK(*d == raw);
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  auto round = base64_decode(base64_encode(all));
  REQUIRE(round.ok());
  CHECK(*round == all);
  // "Zh==" and "Zm9=" carry bits past the last byte: second spellings of "Zg==" and "Zm8=".
  for (std::string_view bad : {"Zg=", "Zg", "Z===", "====", "Zm9v Yg==", "Zm=v", "Zm9\n", "Zg==Zg==", "Zh==", "Zm9="}) {
    CAPTURE(bad);
    CHECK_FALSE(base64_decode(bad).ok());
  }
}

TEST_CASE("MD5: stored secret and salted response") {
  // printf 'penciluser' | md5sum  -> 20c46e3762c864548e296b33c3406aa9, which is also what
  // PostgreSQL 15 stored for CREATE ROLE "user" PASSWORD 'pencil' under password_encryption=md5.
  CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(md5_hex("penciluser") == "20c46e3762c864548e296b33c3406aa9");
  CHECK(md5_stored_secret("pencil", "user") == "md520c46e3762c864548e296b33c3406aa9");
  // python3: "md5" + md5(md5(b"penciluser").hexdigest().encode() + bytes([1,2,3,4])).hexdigest()
  CHECK(md5_password_response("pencil", "user", {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}}) ==
        "md54376eb6913b38f9aaff38dc7cf19ca76");
  CHECK(md5_password_response("pencil", "postgres",
                              {std::byte{0xde}, std::byte{0xad}, std::byte{0xbe}, std::byte{0xef}}) ==
        "md5ced99751bea390968e795eaedb0a4935");
}
