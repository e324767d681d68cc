// The Redis tier behind Redis Sentinel (docs/cache.md, "Redis Sentinel"): a primary, a replica
// and two sentinels (Debian's redis-server, `--sentinel`) on loopback, two pgrelay instances
// configured with the sentinels. Through `SENTINEL FAILOVER` under a write-on-A, read-on-B load:
// no client error, both instances follow the new master (their keys appear there), a write
// through one after the failover is never answered stale through the other, and the old master
// is not written to once they have followed.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <regex>
#include <thread>

#include "harness.h"
#include "redis_server.h"
#include "shared_cache_util.h"

using namespace pgrelay::it;

namespace {

constexpr const char* kDatabase = "redis_sentinel_it";
constexpr const char* kMaster = "it";

std::string redis_cli(int port, const std::string& args) {
  const auto r = run_command("redis-cli -p " + std::to_string(port) + " " + args, 10s);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  return r.output;
}

// How many times the server on `port` ran `command` (INFO commandstats).
int64_t redis_calls(int port, const std::string& command) {
  const std::string info = redis_cli(port, "INFO commandstats");
  std::smatch m;
  if (!std::regex_search(info, m, std::regex("cmdstat_" + command + ":calls=([0-9]+)"))) return 0;
  return std::stoll(m[1].str());
}

std::string role(int port) {
  const std::string out = redis_cli(port, "ROLE");
  return out.substr(0, out.find('\n'));
}

// SHOW CACHE's text column `column`.
std::string cache_text(PGconn* console, const std::string& column) {
  std::unique_ptr<PGresult, ResultDeleter> r(PQexec(console, "SHOW CACHE"));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  const int i = PQfnumber(r.get(), column.c_str());
  REQUIRE_MESSAGE(i >= 0, "SHOW CACHE has no column " << column);
  return PQgetvalue(r.get(), 0, i);
}

bool wait_until(const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

RelayConfig sentinel_config(const RedisServer& s1, const RedisServer& s2) {
  RelayConfig config = RelayConfig().pool("transaction", 4).set("admin_users", "[\"postgres\"]");
  config.databases += "\n[cache]\nenabled = true\ndefault_ttl = \"60s\"\nredis_sentinels = [\"127.0.0.1:" +
                      std::to_string(s1.port()) + "\", \"127.0.0.1:" + std::to_string(s2.port()) +
                      "\"]\nredis_master_name = \"" + kMaster + "\"\nredis_timeout = \"50ms\"\nredis_key_prefix = \"it\"\n";
  return config;
}

// One write through `ca` then one read through `cb`: counts a client error or a read that does
// not show the write.
struct Pairs {
  int errors = 0;
  int stale = 0;
  int done = 0;
  std::string first_error;
  void run(PGconn* ca, PGconn* cb, int value) {
    const std::string write = value % 2 ? "UPDATE kv SET v = " + std::to_string(value) + " WHERE k = 2"
                                        : "BEGIN; UPDATE kv SET v = " + std::to_string(value) + " WHERE k = 2; COMMIT";
    const auto w = exec(ca, write);
    const auto r = exec(cb, "SELECT v FROM kv WHERE k = 2");
    ++done;
    if (!w.ok() || !r.ok() || r.rows.empty()) {
      if (first_error.empty()) first_error = w.ok() ? r.message : w.message;
      ++errors;
    } else if (r.rows[0][0] != std::to_string(value)) {
      ++stale;
    }
  }
};

}  // namespace

TEST_CASE("Redis Sentinel: pgrelay follows a failover of the Redis primary, never answering stale") {
  RedisServer primary;
  RedisServer replica({"--replicaof", "127.0.0.1", std::to_string(primary.port())});
  REQUIRE(wait_until([&] { return redis_cli(replica.port(), "INFO replication").find("master_link_status:up") != std::string::npos; }, 10s));
  auto s1 = RedisServer::sentinel(kMaster, primary.port());
  auto s2 = RedisServer::sentinel(kMaster, primary.port());
  // Both sentinels know the replica (from the primary's INFO) before a failover can pick it.
  for (const auto* s : {s1.get(), s2.get()}) {
    REQUIRE(wait_until([&] { return redis_cli(s->port(), std::string("SENTINEL replicas ") + kMaster).find("slave") != std::string::npos; }, 20s));
  }
  const std::string old_master = "127.0.0.1:" + std::to_string(primary.port());
  const std::string new_master = "127.0.0.1:" + std::to_string(replica.port());

  Conn d = kv_database(kDatabase);
  PgrelayProcess a(sentinel_config(*s1, *s2));
  PgrelayProcess b(sentinel_config(*s1, *s2));
  Conn ca = connect_ok(a.conninfo(kDatabase)), cb = connect_ok(b.conninfo(kDatabase));
  Conn console_a = connect_ok(a.conninfo("pgrelay")), console_b = connect_ok(b.conninfo("pgrelay"));

  // Filled through A, a hit on B from Redis: the tier works through the sentinels' master.
  const std::string read = "SELECT v FROM kv WHERE k = 1";
  CHECK(answered_from(ca.get(), console_a.get(), "hits", read) == "0");
  REQUIRE(wait_until([&] { return cache_stat(console_a.get(), "redis_stores") >= 1; }, 10s));
  (void)scalar(cb.get(), "SELECT v FROM kv WHERE k = 2");
  CHECK(answered_from(cb.get(), console_b.get(), "redis_hits", read) == "0");
  CHECK(cache_text(console_a.get(), "redis_master") == old_master);
  CHECK(cache_text(console_b.get(), "redis_master") == old_master);
  CHECK(cache_stat(console_a.get(), "redis_failovers") == 0);
  CHECK(redis_cli(primary.port(), "--scan --pattern 'it:g:*'").find("it:g:") != std::string::npos);
  (void)answered_from(cb.get(), console_b.get(), "hits", "SELECT v FROM kv WHERE k = 2");

  // The failover, under load: write on A, read on B, until both instances follow. Asked of the
  // second sentinel, so the first (asked first) names the old primary until it hears of the
  // switch: the newer config epoch wins, and the instances switch once (redis_failovers below).
  const auto started = std::chrono::steady_clock::now();
  CHECK(redis_cli(s2->port(), std::string("SENTINEL FAILOVER ") + kMaster).find("OK") != std::string::npos);
  Pairs during;
  std::chrono::steady_clock::duration followed_a{}, followed_b{};
  int value = 1000;
  while (std::chrono::steady_clock::now() - started < 30s) {
    during.run(ca.get(), cb.get(), ++value);
    const auto now = std::chrono::steady_clock::now();
    if (followed_a.count() == 0 && cache_text(console_a.get(), "redis_master") == new_master) followed_a = now - started;
    if (followed_b.count() == 0 && cache_text(console_b.get(), "redis_master") == new_master) followed_b = now - started;
    if (followed_a.count() != 0 && followed_b.count() != 0) break;
  }
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  MESSAGE("followed the failover after " << duration_cast<milliseconds>(followed_a).count() << " ms (A), "
                                         << duration_cast<milliseconds>(followed_b).count() << " ms (B) from SENTINEL FAILOVER; "
                                         << during.done << " write/read pairs meanwhile, " << during.stale
                                         << " read the value before their write");
  REQUIRE(followed_a.count() != 0);
  REQUIRE(followed_b.count() != 0);
  CHECK_MESSAGE(during.errors == 0, during.first_error);
  CHECK(cache_stat(console_a.get(), "redis_failovers") == 1);
  CHECK(cache_stat(console_b.get(), "redis_failovers") == 1);

  // After the failover: every write seen by the next read through the other instance, served
  // from the tiers, bumps landing on the new master and none on the old one.
  const bool old_still_master = role(primary.port()) == "master";   // Sentinel demotes it ~10 s later
  const int64_t old_hincrby = redis_calls(primary.port(), "hincrby");
  const int64_t old_hset = redis_calls(primary.port(), "hset");
  const int64_t new_hincrby = redis_calls(replica.port(), "hincrby");
  const int64_t b_hits = cache_stat(console_b.get(), "hits");
  Pairs after;
  const int rounds = std::getenv("CI") ? 100 : 300;
  for (int i = 0; i < rounds; ++i) {
    (void)exec(cb.get(), "SELECT v FROM kv WHERE k = 2");   // B holds the answer from before the write
    after.run(ca.get(), cb.get(), ++value);
  }
  CHECK_MESSAGE(after.errors == 0, after.first_error);
  CHECK(after.stale == 0);
  CHECK(cache_stat(console_b.get(), "hits") > b_hits);
  CHECK(redis_calls(replica.port(), "hincrby") - new_hincrby >= rounds);
  CHECK(role(replica.port()) == "master");
  CHECK(redis_cli(replica.port(), "--scan --pattern 'it:g:*'").find("it:g:") != std::string::npos);
  if (old_still_master && role(primary.port()) == "master") {
    // Not yet a replica, so nothing replicates into it: every command it ran came from a client.
    CHECK(redis_calls(primary.port(), "hincrby") == old_hincrby);
    CHECK(redis_calls(primary.port(), "hset") == old_hset);
  } else {
    MESSAGE("the old master became a replica during the check: its command counts include replication");
  }
  // An answer filled on B after the failover is a hit on A from the new master's tier.
  const std::string fresh = "SELECT v FROM kv WHERE k = 1 AND v >= 0";
  (void)scalar(ca.get(), "SELECT v FROM kv WHERE k = 2 AND v >= 0");   // A's catalog facts for the operator
  (void)scalar(ca.get(), "SELECT v FROM kv WHERE k = 2 AND v >= 0");
  CHECK(answered_from(cb.get(), console_b.get(), "hits", fresh) == "0");
  REQUIRE(wait_until([&] { return redis_cli(replica.port(), "--scan --pattern 'it:a*'").find("it:a") != std::string::npos; }, 10s));
  CHECK(answered_from(ca.get(), console_a.get(), "redis_hits", fresh) == "0");
}
