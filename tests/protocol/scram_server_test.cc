// SCRAM-SHA-256 server side and MD5 verification: RFC 7677's vector, a secret made by PostgreSQL 15,
// ClientKey recovery and login with keys, and every malformed or unsupported message.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "protocol/md5.h"
#include "protocol/scram.h"
#include "protocol/scram_server.h"
#include "protocol/sqlstate.h"

using namespace pgrelay;
using namespace pgrelay::protocol;

namespace {

// SET password_encryption = 'scram-sha-256'; CREATE ROLE scram_user PASSWORD 'scrampass';
// SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_user';   -- PostgreSQL 15.
constexpr std::string_view kPgSecret =
    "SCRAM-SHA-256$4096:quDey+UV/A54TAzjGvA9pg==$GkEyqogHWSO8eUxjuZcNxp8+nM6+Qyg7pNyXrpKU7OI=:"
    "f9nFVffSI4vQNcoFbOOLT0pbvT2DCLo5jinyQ0IDSKg=";
// The same with password_encryption = 'md5' and role md5_user, password 'md5pass'.
constexpr std::string_view kPgMd5Secret = "md580dcaaba30666a7775bc7ee0c688f8db";

ScramSecret pg_secret() {
  auto s = parse_scram_secret(kPgSecret);
  REQUIRE(s.ok());
  return *s;
}

// Runs a whole exchange: client with `client`, server over `secret`. Returns the server's
// error SQLSTATE ("" on success) and leaves `server` for inspection.
std::string exchange(ScramClient& client, ScramServer& server, std::string_view server_nonce = "SERVERNONCE") {
  auto server_first = server.handle_client_first(client.client_first_message(), server_nonce);
  if (!server_first.ok()) return server_first.error().sqlstate;
  auto client_final = client.handle_server_first(*server_first);
  REQUIRE(client_final.ok());
  auto server_final = server.handle_client_final(*client_final);
  if (!server_final.ok()) return server_final.error().sqlstate;
  CHECK(client.verify_server_final(*server_final).ok());
  return "";
}

}  // namespace

TEST_CASE("SCRAM server: RFC 7677 test vector") {
  auto salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  REQUIRE(salt.ok());
  ScramServer server(scram_secret_from_password("pencil", *salt, 4096));
  auto first = server.handle_client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  REQUIRE(first.ok());
  CHECK(*first == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  auto final_msg = server.handle_client_final(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  REQUIRE(final_msg.ok());
  CHECK(*final_msg == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  REQUIRE(server.keys().has_value());
  CHECK(server.keys()->salt == *salt);
  CHECK(server.keys()->iterations == 4096);
}

TEST_CASE("SCRAM server: a secret made by PostgreSQL 15") {
  const ScramSecret secret = pg_secret();
  CHECK(secret.iterations == 4096);
  CHECK(base64_encode(secret.salt) == "quDey+UV/A54TAzjGvA9pg==");
  CHECK(scram_secret_from_password("scrampass", secret.salt, 4096) == secret);
  CHECK(scram_verify_password(secret, "scrampass"));
  CHECK_FALSE(scram_verify_password(secret, "scrampasS"));
  CHECK_FALSE(scram_verify_password(secret, ""));

  SUBCASE("the right password logs in, as libpq would (empty SCRAM user name)") {
    ScramClient client("scrampass", "clientnonce123");
    ScramServer server(secret);
    CHECK(exchange(client, server) == "");
  }
  SUBCASE("a wrong password is 28P01 and yields no keys") {
    ScramClient client("wrong", "clientnonce123");
    ScramServer server(secret);
    CHECK(exchange(client, server) == sqlstate::kInvalidPassword);
    CHECK_FALSE(server.keys().has_value());
  }
  SUBCASE("y,, (client could bind, thinks the server cannot) is accepted and echoed") {
    ScramServer server(secret);
    auto first = server.handle_client_first("y,,n=,r=abc", "def");
    REQUIRE(first.ok());
    // The proof does not matter here: a "c=biws" (n,,) answer is the mismatch being tested.
    auto wrong_binding = server.handle_client_final("c=biws,r=abcdef,p=" + base64_encode(std::string(32, 'x')));
    REQUIRE_FALSE(wrong_binding.ok());
    CHECK(wrong_binding.error().sqlstate == sqlstate::kProtocolViolation);
  }
}

TEST_CASE("SCRAM server: the recovered ClientKey logs in again without the password") {
  const ScramSecret secret = pg_secret();
  ScramClient client("scrampass", "nonce-one");
  ScramServer server(secret);
  REQUIRE(exchange(client, server) == "");
  REQUIRE(server.keys().has_value());
  const ScramKeys keys = *server.keys();
  CHECK(keys.client_key.size() == 32);
  CHECK(keys.server_key == secret.server_key);

  // What pgrelay does towards PostgreSQL: a fresh exchange, another nonce, keys instead of a password.
  ScramClient forwarded(keys, "nonce-two");
  ScramServer again(secret);
  CHECK(exchange(forwarded, again, "OTHER") == "");

  // The keys travel as text and come back equal.
  auto decoded = decode_scram_keys(encode_scram_keys(keys));
  REQUIRE(decoded.ok());
  CHECK(*decoded == keys);
  CHECK(encode_scram_keys(keys).starts_with("SCRAM-SHA-256-KEYS$4096:quDey+UV/A54TAzjGvA9pg==$"));

  SUBCASE("a server with another salt or iteration count is refused before any proof is sent") {
    ScramSecret other = scram_secret_from_password("scrampass", "another-salt", 4096);
    ScramClient c(keys, "nonce-three");
    ScramServer s(other);
    auto first = s.handle_client_first(c.client_first_message(), "X");
    REQUIRE(first.ok());
    auto r = c.handle_server_first(*first);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sqlstate == sqlstate::kInvalidAuthorization);
  }
}

TEST_CASE("SCRAM keys: text form errors") {
  for (std::string_view bad : {"", "SCRAM-SHA-256$4096:c2FsdA==$a:b", "SCRAM-SHA-256-KEYS$",
                               "SCRAM-SHA-256-KEYS$0:c2FsdA==$a:b", "SCRAM-SHA-256-KEYS$4096:c2FsdA==$YQ==:YQ==",
                               "SCRAM-SHA-256-KEYS$4096$c2FsdA==:x"}) {
    CAPTURE(bad);
    CHECK_FALSE(decode_scram_keys(bad).ok());
  }
}

TEST_CASE("SCRAM server: client-first-message validation") {
  auto sqlstate_of = [](std::string_view client_first) {
    ScramServer server(pg_secret());
    auto r = server.handle_client_first(client_first, "srv");
    return r.ok() ? std::string() : r.error().sqlstate;
  };
  CHECK(sqlstate_of("n,,n=,r=abc") == "");
  CHECK(sqlstate_of("n,,n=someone,r=abc,x=ext") == "");
  CHECK(sqlstate_of("p=tls-server-end-point,,n=,r=abc") == sqlstate::kFeatureNotSupported);
  CHECK(sqlstate_of("n,a=admin,n=,r=abc") == sqlstate::kFeatureNotSupported);
  CHECK(sqlstate_of("n,,m=ext,n=,r=abc") == sqlstate::kFeatureNotSupported);
  for (std::string_view bad : {"", "n", "n,", "x,,n=,r=abc", "n,,", "n,,r=abc", "n,,n=,r=", "n,,n=,x=abc",
                               "n,,n=,r=a\x01" "b", "nn,n=,r=abc"}) {
    CAPTURE(bad);
    CHECK(sqlstate_of(bad) == sqlstate::kProtocolViolation);
  }
  ScramServer server(pg_secret());
  REQUIRE(server.handle_client_first("n,,n=,r=abc", "srv").ok());
  CHECK_FALSE(server.handle_client_first("n,,n=,r=abc", "srv").ok());   // not twice
}

TEST_CASE("SCRAM server: client-final-message validation") {
  const std::string proof = "p=" + base64_encode(std::string(32, 'x'));
  auto sqlstate_of = [&](std::string_view client_final) {
    ScramServer server(pg_secret());
    REQUIRE(server.handle_client_first("n,,n=,r=abc", "def").ok());
    auto r = server.handle_client_final(client_final);
    return r.ok() ? std::string() : r.error().sqlstate;
  };
  CHECK(sqlstate_of("c=biws,r=abcdef," + proof) == sqlstate::kInvalidPassword);       // well formed, wrong
  CHECK(sqlstate_of("c=biws,r=abcdef,x=ext," + proof) == sqlstate::kInvalidPassword); // extensions allowed
  CHECK(sqlstate_of("c=eSws,r=abcdef," + proof) == sqlstate::kProtocolViolation);     // y,, but we got n,,
  CHECK(sqlstate_of("c=biws,r=abcdeX," + proof) == sqlstate::kProtocolViolation);     // another nonce
  CHECK(sqlstate_of("c=biws,r=abc," + proof) == sqlstate::kProtocolViolation);
  CHECK(sqlstate_of("c=biws,r=abcdef,p=YQ==") == sqlstate::kProtocolViolation);        // short proof
  CHECK(sqlstate_of("c=biws,r=abcdef") == sqlstate::kProtocolViolation);
  CHECK(sqlstate_of("r=abcdef,c=biws," + proof) == sqlstate::kProtocolViolation);
  CHECK(sqlstate_of("") == sqlstate::kProtocolViolation);

  ScramServer fresh(pg_secret());
  CHECK_FALSE(fresh.handle_client_final("c=biws,r=abcdef," + proof).ok());   // before client-first
}

TEST_CASE("SCRAM server: random bytes never crash and never authenticate") {
  std::mt19937 rng(7677);
  for (int i = 0; i < 2000; ++i) {
    std::string first(rng() % 40, '\0'), final_msg(rng() % 120, '\0');
    for (char& c : first) c = char(rng() % 4 == 0 ? "nyp,=ra"[rng() % 7] : rng());
    for (char& c : final_msg) c = char(rng() % 4 == 0 ? "crp,=biws"[rng() % 9] : rng());
    ScramServer server(pg_secret());
    auto r1 = server.handle_client_first(first, "srv");
    auto r2 = server.handle_client_final(final_msg);
    CHECK_FALSE(r2.ok());
    CHECK_FALSE(server.keys().has_value());
    (void)r1;
  }
}

TEST_CASE("SCRAM secrets: parse errors say which part") {
  auto message_of = [](std::string_view text) {
    auto r = parse_scram_secret(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sqlstate == sqlstate::kProtocolViolation);
    return r.error().message;
  };
  CHECK(message_of("md5abc").find("expected SCRAM-SHA-256$") != std::string::npos);
  CHECK(message_of("SCRAM-SHA-256$x:quDey+UV/A54TAzjGvA9pg==$YQ==:YQ==").find("iteration") != std::string::npos);
  CHECK(message_of("SCRAM-SHA-256$4096:!!$YQ==:YQ==").find("salt") != std::string::npos);
  CHECK(message_of("SCRAM-SHA-256$4096:quDey+UV/A54TAzjGvA9pg==$YQ==:YQ==").find("StoredKey") != std::string::npos);
  CHECK(message_of("SCRAM-SHA-256$4096:quDey+UV/A54TAzjGvA9pg==$GkEyqogHWSO8eUxjuZcNxp8+nM6+Qyg7pNyXrpKU7OI=:YQ==")
            .find("ServerKey") != std::string::npos);
  CHECK(message_of("SCRAM-SHA-256$4096:quDey+UV/A54TAzjGvA9pg==").find("StoredKey") == std::string::npos);
  CHECK(looks_like_scram_secret(kPgSecret));
  CHECK_FALSE(looks_like_scram_secret("scram-sha-256$"));
}

TEST_CASE("MD5 server side: verifying a response against a secret made by PostgreSQL 15") {
  CHECK(md5_stored_secret("md5pass", "md5_user") == kPgMd5Secret);
  CHECK(looks_like_md5_secret(kPgMd5Secret));
  CHECK(looks_like_md5_secret("md580DCAABA30666A7775BC7EE0C688F8DB"));
  CHECK_FALSE(looks_like_md5_secret("md580dcaaba30666a7775bc7ee0c688f8d"));
  CHECK_FALSE(looks_like_md5_secret("md580dcaaba30666a7775bc7ee0c688f8dz"));
  CHECK_FALSE(looks_like_md5_secret("plain password"));

  const std::array<std::byte, 4> salt{std::byte{0xde}, std::byte{0xad}, std::byte{0xbe}, std::byte{0xef}};
  const std::string right = md5_password_response("md5pass", "md5_user", salt);
  CHECK(md5_verify_response(kPgMd5Secret, salt, right));
  CHECK(md5_verify_response("md580DCAABA30666A7775BC7EE0C688F8DB", salt, right));   // hex case does not matter
  CHECK_FALSE(md5_verify_response(kPgMd5Secret, salt, md5_password_response("md5pasS", "md5_user", salt)));
  CHECK_FALSE(md5_verify_response(kPgMd5Secret, salt, md5_password_response("md5pass", "other", salt)));
  CHECK_FALSE(md5_verify_response(kPgMd5Secret, {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}}, right));
  CHECK_FALSE(md5_verify_response(kPgMd5Secret, salt, right.substr(0, 34)));
  CHECK_FALSE(md5_verify_response(kPgMd5Secret, salt, ""));
  CHECK_FALSE(md5_verify_response("md5pass", salt, right));   // not a stored secret
}

TEST_CASE("SCRAM server: channel binding tls-server-end-point (SCRAM-SHA-256-PLUS)") {
  const ScramSecret secret = pg_secret();
  const std::string cert_hash(32, '\x5a');   // stands in for the SHA-256 of the server's certificate
  auto first_error = [&](std::string_view client_first, bool plus) {
    ScramServer server(secret, cert_hash, plus);
    auto r = server.handle_client_first(client_first, "srv");
    return r.ok() ? std::string() : r.error().sqlstate + " " + r.error().message;
  };

  SUBCASE("a client that binds to the same certificate logs in, and its keys still log in elsewhere") {
    ScramClient client("scrampass", "plusnonce");
    client.set_channel_binding(cert_hash, true);
    CHECK(client.client_first_message() == "p=tls-server-end-point,,n=,r=plusnonce");
    ScramServer server(secret, cert_hash, true);
    CHECK(exchange(client, server) == "");
    REQUIRE(server.keys().has_value());
    ScramClient forwarded(*server.keys(), "nonce-two");   // pgrelay -> PostgreSQL, no binding
    ScramServer plain(secret);
    CHECK(exchange(forwarded, plain, "OTHER") == "");
  }
  SUBCASE("binding data of another certificate (a man in the middle) fails the check") {
    ScramClient client("scrampass", "plusnonce");
    client.set_channel_binding(std::string(32, '\x01'), true);
    ScramServer server(secret, cert_hash, true);
    auto server_first = server.handle_client_first(client.client_first_message(), "srv");
    REQUIRE(server_first.ok());
    auto client_final = client.handle_server_first(*server_first);
    REQUIRE(client_final.ok());
    auto r = server.handle_client_final(*client_final);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sqlstate == sqlstate::kProtocolViolation);
    CHECK(r.error().message == "SCRAM channel binding check failed");
    CHECK_FALSE(server.keys().has_value());
  }
  SUBCASE("plain SCRAM-SHA-256 over TLS still works for a client that cannot bind (n,,)") {
    ScramClient client("scrampass", "nnonce");
    ScramServer server(secret, cert_hash, false);
    CHECK(exchange(client, server) == "");
  }
  SUBCASE("y,, where PLUS was offered is a downgrade; y,, where it was not is fine") {
    CHECK(first_error("y,,n=,r=abc", false).starts_with("08P01 SCRAM channel binding negotiation error"));
    ScramClient client("scrampass", "ynonce");
    client.set_channel_binding(cert_hash, false);
    CHECK(client.client_first_message() == "y,,n=,r=ynonce");
    ScramServer server(secret);   // no TLS: nothing offered
    CHECK(exchange(client, server) == "");
  }
  SUBCASE("the flag must agree with the mechanism, and the type must be tls-server-end-point") {
    CHECK(first_error("n,,n=,r=abc", true).starts_with("08P01 the client selected SCRAM-SHA-256-PLUS"));
    CHECK(first_error("p=tls-server-end-point,,n=,r=abc", false).starts_with("08P01 the client selected SCRAM-SHA-256 without"));
    CHECK(first_error("p=tls-unique,,n=,r=abc", true) == "08P01 unsupported SCRAM channel binding type \"tls-unique\"");
    CHECK(first_error("p=tls-server-end-point", true).starts_with("08P01"));
    CHECK(first_error("p,,n=,r=abc", true).starts_with("08P01"));
    CHECK(first_error("p=tls-server-end-point,a=x,n=,r=abc", true).starts_with("0A000"));
    CHECK(first_error("p=tls-server-end-point,,n=,r=abc", true) == "");
    ScramServer not_offered(secret, "", true);
    CHECK_FALSE(not_offered.handle_client_first("p=tls-server-end-point,,n=,r=abc", "srv").ok());
  }
  SUBCASE("the c= of a binding client must carry the data, not just the header") {
    ScramServer server(secret, cert_hash, true);
    REQUIRE(server.handle_client_first("p=tls-server-end-point,,n=,r=abc", "def").ok());
    auto r = server.handle_client_final("c=" + base64_encode("p=tls-server-end-point,,") + ",r=abcdef,p=" +
                                        base64_encode(std::string(32, 'x')));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "SCRAM channel binding check failed");
  }
}
