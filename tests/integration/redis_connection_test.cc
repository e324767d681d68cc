// RedisConnection against a real redis-server: round trips, pipelines, concurrent callers, AUTH
// and SELECT, Unix sockets, deadlines (DEBUG SLEEP), and a server killed and restarted.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "conf/redis_url.h"
#include "harness.h"
#include "proxy/net/redis_connection.h"
#include "proxy/net/tls_context.h"
#include "redis_server.h"
#include "tls_util.h"

namespace pgrelay::it {
namespace {

namespace asio = boost::asio;
using proxy::RedisConnection;
using proxy::RedisOptions;
using proxy::RedisReply;
using proxy::RedisResult;
using proxy::RedisStatus;
using proxy::redis_args;
using Clock = std::chrono::steady_clock;

RedisOptions options_for(const std::string& url) {
  auto endpoint = conf::parse_redis_url(url);
  REQUIRE_MESSAGE(endpoint.ok(), url);
  RedisOptions o;
  o.endpoint = *endpoint;
  return o;
}

// Runs `body` on a fresh io_context until it and everything it started are done.
void run(std::function<asio::awaitable<void>(asio::any_io_executor)> body) {
  asio::io_context io;
  std::exception_ptr failure;
  asio::co_spawn(io, body(io.get_executor()), [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

Clock::time_point in(std::chrono::milliseconds ms) { return Clock::now() + ms; }

std::string describe(const RedisResult& r) {
  if (!r.ok()) return std::string(proxy::to_string(r.status)) + ": " + r.error;
  return "type " + std::to_string(int(r.reply.type)) + " '" + r.reply.str + "' " + std::to_string(r.reply.integer);
}

}  // namespace

TEST_CASE("SET and GET round-trip binary values; every reply type comes back as a value") {
  RedisServer server;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    RedisConnection redis(ex, options_for(server.url()));
    const std::string value("a\0b\r\nc\xff", 7);
    RedisResult set = co_await redis.command(redis_args("SET", "k", value), in(1000ms));
    CHECK_MESSAGE(set.ok(), describe(set));
    CHECK(set.reply.is_status("OK"));
    RedisResult get = co_await redis.command(redis_args("GET", "k"), in(1000ms));
    CHECK(get.reply.type == RedisReply::Type::kString);
    CHECK(get.reply.str == value);
    RedisResult missing = co_await redis.command(redis_args("GET", "nothing"), in(1000ms));
    CHECK(missing.ok());
    CHECK(missing.reply.is_nil());
    RedisResult incr = co_await redis.command(redis_args("INCRBY", "n", "41"), in(1000ms));
    CHECK(incr.reply.type == RedisReply::Type::kInteger);
    CHECK(incr.reply.integer == 41);
    RedisResult wrong = co_await redis.command(redis_args("INCR", "k"), in(1000ms));
    CHECK(wrong.ok());   // Redis answered: an error reply, not a failed call
    CHECK(wrong.reply.is_error());
    RedisResult rpush = co_await redis.command(redis_args("RPUSH", "l", "x", "", "z"), in(1000ms));
    CHECK(rpush.reply.integer == 3);
    RedisResult list = co_await redis.command(redis_args("LRANGE", "l", "0", "-1"), in(1000ms));
    REQUIRE(list.reply.type == RedisReply::Type::kArray);
    REQUIRE(list.reply.elements.size() == 3);
    CHECK(list.reply.elements[1].str.empty());
    CHECK(list.reply.elements[2].str == "z");
    RedisResult empty = co_await redis.command(RedisConnection::Args{}, in(1000ms));
    CHECK(empty.status == RedisStatus::kProtocol);
    CHECK(redis.stats().connects == 1);
  });
}

TEST_CASE("a pipeline of 100 commands is one write, its replies in order; concurrent callers get their own") {
  RedisServer server;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    RedisConnection redis(ex, options_for(server.url()));
    std::vector<std::string> keys, values;
    for (int i = 0; i < 50; ++i) {
      keys.push_back("key" + std::to_string(i));
      values.push_back(std::string(size_t(i) * 100, char('a' + i % 26)));
    }
    std::vector<RedisConnection::Args> commands;
    for (int i = 0; i < 50; ++i) commands.push_back(redis_args("SET", keys[i], values[i]));
    for (int i = 49; i >= 0; --i) commands.push_back(redis_args("GET", keys[i]));
    std::vector<RedisResult> results = co_await redis.pipeline(std::move(commands), in(2000ms));
    REQUIRE(results.size() == 100);
    for (int i = 0; i < 50; ++i) CHECK(results[i].reply.is_status("OK"));
    for (int i = 0; i < 50; ++i) CHECK(results[50 + i].reply.str == values[49 - i]);

    // 200 coroutines at once on one connection, each must see its own ECHO.
    int done = 0, right = 0;
    for (int i = 0; i < 200; ++i) {
      asio::co_spawn(ex, [&redis, &done, &right, i]() -> asio::awaitable<void> {
        const std::string mine = "caller " + std::to_string(i);
        RedisResult r = co_await redis.command(redis_args("ECHO", mine), in(2000ms));
        if (r.ok() && r.reply.str == mine) ++right;
        ++done;
      }, asio::detached);
    }
    asio::steady_timer wait(ex);
    while (done < 200) {
      wait.expires_after(1ms);
      co_await wait.async_wait(asio::use_awaitable);
    }
    CHECK(right == 200);
    CHECK(redis.stats().connects == 1);
  });
}

TEST_CASE("AUTH with a password, an ACL user, SELECT; a wrong password is a clear login error") {
  RedisServer server({"--requirepass", "s3cret"});
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const std::string base = "127.0.0.1:" + std::to_string(server.port());
    RedisConnection good(ex, options_for("redis://:s3cret@" + base + "/3"));
    RedisResult set = co_await good.command(redis_args("SET", "in3", "yes"), in(1000ms));
    CHECK_MESSAGE(set.reply.is_status("OK"), describe(set));
    RedisResult acl = co_await good.command(redis_args("ACL", "SETUSER", "app", "on", ">apppw", "~*", "+@all"), in(1000ms));
    CHECK_MESSAGE(acl.reply.is_status("OK"), describe(acl));

    RedisConnection user(ex, options_for("redis://app:apppw@" + base));
    RedisResult in0 = co_await user.command(redis_args("GET", "in3"), in(1000ms));
    CHECK_MESSAGE(in0.ok(), describe(in0));
    CHECK(in0.reply.is_nil());   // SELECT 3 put it elsewhere
    RedisResult who = co_await user.command(redis_args("ACL", "WHOAMI"), in(1000ms));
    CHECK(who.reply.str == "app");

    RedisConnection wrong(ex, options_for("redis://:nope@" + base));
    const auto start = Clock::now();
    RedisResult refused = co_await wrong.command(redis_args("GET", "in3"), in(1000ms));
    CHECK(Clock::now() - start < 500ms);
    CHECK(refused.status == RedisStatus::kLogin);
    CHECK_MESSAGE(refused.error.find("AUTH refused: WRONGPASS") != std::string::npos, refused.error);
    CHECK(refused.error.find("nope") == std::string::npos);
    CHECK(wrong.stats().login_failures == 1);

    RedisConnection none(ex, options_for("redis://" + base));
    RedisResult noauth = co_await none.command(redis_args("GET", "in3"), in(1000ms));
    CHECK(noauth.reply.is_error());
    CHECK(noauth.reply.str.starts_with("NOAUTH"));

    RedisConnection bad_db(ex, options_for("redis://:s3cret@" + base + "/999"));
    RedisResult db = co_await bad_db.command(redis_args("PING"), in(1000ms));
    CHECK(db.status == RedisStatus::kLogin);
    CHECK(db.error.find("SELECT refused") != std::string::npos);
  });
}

TEST_CASE("a Unix socket with ?db=N") {
  RedisServer server;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    RedisConnection redis(ex, options_for("unix://" + server.unix_socket() + "?db=2"));
    RedisResult set = co_await redis.command(redis_args("SET", "u", "1"), in(1000ms));
    CHECK_MESSAGE(set.reply.is_status("OK"), describe(set));
    RedisConnection tcp(ex, options_for(server.url() + "/2"));
    RedisResult get = co_await tcp.command(redis_args("GET", "u"), in(1000ms));
    CHECK(get.reply.str == "1");
  });
}

TEST_CASE("rediss:// verifies the server's certificate against server_tls_ca_file") {
  TestCerts certs({});
  RedisServer server({"--tls-cert-file", certs.path("server.pem"), "--tls-key-file", certs.path("server.key"),
                      "--tls-ca-cert-file", certs.path("ca.pem"), "--tls-auth-clients", "no"},
                     /*tls=*/true);
  auto context = [](const std::string& ca) {
    conf::ServerTlsSettings settings;
    settings.ca_file = ca;
    auto ctx = proxy::build_server_tls_context(settings);
    REQUIRE_MESSAGE(ctx.ok(), (ctx.ok() ? "" : ctx.error().message));
    return *ctx;
  };
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    RedisOptions good = options_for("rediss://127.0.0.1:" + std::to_string(server.port()));
    good.tls_ctx = context(certs.path("ca.pem"));
    RedisConnection redis(ex, good);
    RedisResult set = co_await redis.command(redis_args("SET", "t", "over tls"), in(2000ms));
    CHECK_MESSAGE(set.reply.is_status("OK"), describe(set));
    RedisResult get = co_await redis.command(redis_args("GET", "t"), in(2000ms));
    CHECK(get.reply.str == "over tls");

    RedisOptions rogue = good;
    rogue.tls_ctx = context(certs.path("rogue-ca.pem"));
    RedisConnection untrusted(ex, rogue);
    RedisResult refused = co_await untrusted.command(redis_args("PING"), in(2000ms));
    CHECK(refused.status == RedisStatus::kConnectionLost);
    CHECK_MESSAGE(refused.error.find("TLS handshake failed") != std::string::npos, refused.error);
  });
}

TEST_CASE("a reply later than the deadline is a timeout within the deadline, and is never taken for a later one") {
  RedisServer server;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    RedisConnection redis(ex, options_for(server.url()));
    RedisResult warm = co_await redis.command(redis_args("SET", "k", "v"), in(1000ms));
    REQUIRE(warm.ok());
    // A second caller queued behind the slow command loses its connection with it.
    RedisStatus behind = RedisStatus::kOk;
    bool behind_done = false;
    const auto start = Clock::now();
    asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
      RedisResult r = co_await redis.command(redis_args("GET", "k"), in(1000ms));
      behind = r.status;
      behind_done = true;
    }, asio::detached);
    RedisResult slow = co_await redis.command(redis_args("DEBUG", "SLEEP", "0.05"), in(5ms));
    const auto elapsed = Clock::now() - start;
    CHECK(slow.status == RedisStatus::kTimeout);
    MESSAGE("DEBUG SLEEP 0.05 with a 5 ms deadline returned after "
            << std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() << " us");
    CHECK(elapsed < 15ms);
    CHECK(elapsed >= 5ms);
    asio::steady_timer wait(ex);
    while (!behind_done) {
      wait.expires_after(1ms);
      co_await wait.async_wait(asio::use_awaitable);
    }
    CHECK(behind == RedisStatus::kConnectionLost);
    // The next command reconnects (the server is still asleep for a while: a generous deadline)
    // and gets its own reply, not the late "OK" of DEBUG SLEEP.
    RedisResult get = co_await redis.command(redis_args("GET", "k"), in(1000ms));
    CHECK_MESSAGE(get.ok(), describe(get));
    CHECK(get.reply.type == RedisReply::Type::kString);
    CHECK(get.reply.str == "v");
    RedisResult ping = co_await redis.command(redis_args("PING"), in(1000ms));
    CHECK(ping.reply.is_status("PONG"));
    CHECK(redis.stats().timeouts == 1);
    CHECK(redis.stats().disconnects == 1);
    CHECK(redis.stats().connects == 2);
  });
}

TEST_CASE("redis-server killed: connection lost; restarted: the next command reconnects") {
  RedisServer server;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    RedisConnection redis(ex, options_for(server.url()));
    RedisResult first = co_await redis.command(redis_args("SET", "k", "v"), in(1000ms));
    REQUIRE(first.ok());
    server.kill();
    RedisResult lost = co_await redis.command(redis_args("GET", "k"), in(1000ms));
    CHECK_MESSAGE(lost.status == RedisStatus::kConnectionLost, describe(lost));
    RedisResult refused = co_await redis.command(redis_args("GET", "k"), in(1000ms));
    CHECK_MESSAGE(refused.status == RedisStatus::kConnectionLost, describe(refused));
    CHECK(refused.error.find("could not connect") != std::string::npos);
    server.start();
    RedisResult back = co_await redis.command(redis_args("SET", "k", "again"), in(1000ms));
    CHECK_MESSAGE(back.ok(), describe(back));
    RedisResult get = co_await redis.command(redis_args("GET", "k"), in(1000ms));
    CHECK(get.reply.str == "again");
    CHECK(redis.stats().connect_failures >= 1);
  });
}

TEST_CASE("round-trip time on loopback: 1,000 GETs one after another") {
  RedisServer server;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    RedisConnection redis(ex, options_for(server.url()));
    RedisResult set = co_await redis.command(redis_args("SET", "k", std::string(100, 'x')), in(1000ms));
    REQUIRE(set.ok());
    std::vector<double> us;
    int failures = 0;
    for (int i = 0; i < 1000; ++i) {
      const auto start = Clock::now();
      RedisResult r = co_await redis.command(redis_args("GET", "k"), in(1000ms));
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      if (!r.ok()) ++failures;
    }
    CHECK(failures == 0);
    std::sort(us.begin(), us.end());
    MESSAGE("GET round trip on loopback: p50 " << us[500] << " us, p99 " << us[990] << " us, max " << us.back() << " us");
  });
}

}  // namespace pgrelay::it
