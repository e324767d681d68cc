// AuthStore (fake and derived secrets, the auth_query cache, forwarded credentials) and which
// credential a client's pool logs in with.
#include <doctest/doctest.h>

#include "protocol/scram_server.h"
#include "proxy/session/auth_store.h"
#include "proxy/session/client_credentials.h"
#include "proxy/server/server_connection.h"

using namespace pgrelay;
using namespace pgrelay::proxy;
using namespace std::chrono_literals;

TEST_CASE("fake secrets: stable per user and process, different across users and processes, match nothing") {
  AuthStore a(std::string(32, 'a')), b(std::string(32, 'b'));
  const protocol::ScramSecret s1 = a.fake_scram_secret("nobody");
  CHECK(s1 == a.fake_scram_secret("nobody"));
  CHECK_FALSE(s1 == a.fake_scram_secret("nobody2"));
  CHECK(s1.salt != a.fake_scram_secret("nobody2").salt);
  CHECK_FALSE(s1 == b.fake_scram_secret("nobody"));
  CHECK(s1.iterations == AuthStore::kIterations);
  CHECK(s1.salt.size() == 16);
  CHECK(s1.stored_key.size() == 32);
  CHECK_FALSE(protocol::scram_verify_password(s1, ""));
  CHECK_FALSE(protocol::scram_verify_password(s1, "nobody"));

  AuthStore random1, random2;   // each process draws its own key
  CHECK_FALSE(random1.fake_scram_secret("x") == random2.fake_scram_secret("x"));
}

TEST_CASE("derived secrets: a plain password's SCRAM secret, with the salt a fake one would have") {
  AuthStore store(std::string(32, 'k'));
  const protocol::ScramSecret s = store.scram_secret_for_password("app", "pw");
  CHECK(protocol::scram_verify_password(s, "pw"));
  CHECK_FALSE(protocol::scram_verify_password(s, "pw2"));
  CHECK(s == store.scram_secret_for_password("app", "pw"));                   // cached, same salt
  CHECK(s.salt == store.fake_scram_secret("app").salt);                       // a probe cannot tell them apart
  CHECK_FALSE(s == store.scram_secret_for_password("app", "other"));
  CHECK(protocol::scram_verify_password(store.scram_secret_for_password("app", "other"), "other"));
}

TEST_CASE("auth_query cache: hits within the TTL, misses after it, never with TTL 0") {
  AuthStore store(std::string(32, 'k'));
  const auto t0 = AuthStore::Clock::now();
  CHECK_FALSE(store.cached_secret("k", t0, 30s).has_value());
  store.cache_secret("k", std::string("SCRAM-SHA-256$..."), t0);
  store.cache_secret("unknown", std::nullopt, t0);
  auto hit = store.cached_secret("k", t0 + 29s, 30s);
  REQUIRE(hit.has_value());
  CHECK(*hit == std::optional<std::string>("SCRAM-SHA-256$..."));
  auto negative = store.cached_secret("unknown", t0 + 1s, 30s);
  REQUIRE(negative.has_value());
  CHECK_FALSE(negative->has_value());                                          // "no such user" is cached too
  CHECK_FALSE(store.cached_secret("k", t0 + 30s, 30s).has_value());
  CHECK_FALSE(store.cached_secret("k", t0, 0s).has_value());
  CHECK_FALSE(store.cached_secret("k", t0 - 1s, 30s).has_value());             // clock confusion: refetch
}

TEST_CASE("forwarded SCRAM keys travel as a password that no real password can be") {
  protocol::ScramKeys keys{std::string(32, '\1'), std::string(32, '\2'), "salt", 4096};
  const std::string password = forwarded_scram_password(keys);
  CHECK(password.front() == '\0');
  auto back = forwarded_scram_keys(password);
  REQUIRE(back.has_value());
  CHECK(*back == keys);
  CHECK_FALSE(forwarded_scram_keys("secret").has_value());
  CHECK_FALSE(forwarded_scram_keys(password.substr(1)).has_value());
  CHECK_FALSE(forwarded_scram_keys("").has_value());
}

TEST_CASE("entry_with_forwarded_credential: only entries without a password, logging in as the client") {
  AuthStore store(std::string(32, 'k'));
  conf::DatabaseEntry own;
  own.host = "10.0.0.5";
  own.port = 5432;

  SUBCASE("the client's credential becomes the entry's password, and stays for clients that bring none") {
    CHECK(entry_with_forwarded_credential(store, own, "app", "").password.empty());
    CHECK(entry_with_forwarded_credential(store, own, "app", "pw").password == "pw");
    CHECK(entry_with_forwarded_credential(store, own, "app", "").password == "pw");     // e.g. a trust client
    CHECK(entry_with_forwarded_credential(store, own, "other", "").password.empty());  // per user
    CHECK(entry_with_forwarded_credential(store, own, "app", "pw2").password == "pw2"); // the last one wins
    conf::DatabaseEntry elsewhere = own;
    elsewhere.port = 5433;
    CHECK(entry_with_forwarded_credential(store, elsewhere, "app", "").password.empty());   // per server
  }
  SUBCASE("a configured password or another forced user is left alone") {
    conf::DatabaseEntry configured = own;
    configured.password = "configured";
    CHECK(entry_with_forwarded_credential(store, configured, "app", "pw").password == "configured");
    conf::DatabaseEntry forced = own;
    forced.user = "service";
    CHECK(entry_with_forwarded_credential(store, forced, "app", "pw").password.empty());
    forced.user = "app";
    CHECK(entry_with_forwarded_credential(store, forced, "app", "pw").password == "pw");
  }
}

TEST_CASE("ClientAuthStats start at zero") {
  AuthStore store;
  CHECK(store.stats().successes.load() == 0);
  CHECK(store.stats().failures.load() == 0);
  CHECK(store.stats().rejected.load() == 0);
}
