// The invalidation channel: SUBSCRIBE, apply other instances' bumps, keep the lease, PING to notice a dead link.
#include "proxy/session/shared_channel.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "cache/lease_messages.h"
#include "cache/shared_keys.h"
#include "proxy/base/log.h"
#include "proxy/session/query_cache.h"
#include "proxy/session/shared_lease.h"

namespace pgrelay::proxy {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{250};
constexpr std::chrono::milliseconds kMaxBackoff{5000};
constexpr std::chrono::seconds kPingEvery{1};
constexpr std::chrono::seconds kCallDeadline{2};

RedisOptions options(const SharedTierSettings& s, SslCtxPtr tls, std::function<void(const RedisReply&)> on_message) {
  return RedisOptions{.endpoint = s.endpoint,
                      .tls_ctx = std::move(tls),
                      .tls_mode = conf::ServerTlsMode::kVerifyFull,
                      .connect_timeout = std::chrono::milliseconds(1000),
                      .sentinel = s.sentinel,
                      .on_message = std::move(on_message)};
}

}  // namespace

struct SharedChannel::State {
  State(asio::any_io_executor e, const SharedTierSettings& s, SslCtxPtr tls, QueryCache& c,
        std::atomic<uint64_t>& generation)
      : ex(e),
        settings(s),
        cache(c),
        schema_generation(generation),
        lease(*c.lease()),
        redis(e, options(s, tls, [this](const RedisReply& m) { heard(m.elements[2].str); })),
        pub(e, options(s, tls, nullptr)) {}

  // Every message on the channel, in the order Redis took them.
  void heard(const std::string& text) {
    const auto now = std::chrono::steady_clock::now();
    if (text.starts_with("L ")) {
      if (const auto ping = cache::decode_lease_ping(text)) {
        if (ping->instance == settings.instance) {
          lease.book().heard_own_ping(ping->id, now);
        } else {
          lease.book().heard_ping(ping->instance, now);
          if (cache::instance_lease_length(ping->instance) != settings.lease && warned.insert(ping->instance).second) {
            log_warning("query cache: another instance on ", cache::invalidation_channel_name(settings.prefix), " has a lease of ",
                        cache::instance_lease_length(ping->instance).count(), " ms, this one ", settings.lease.count(),
                        " ms ([cache] redis_lease): give every instance the same (bumps here wait for the longer one)");
          }
        }
      }
    } else if (text.starts_with("A ")) {
      if (const auto ack = cache::decode_lease_ack(text)) {
        for (const auto& [to, seqs] : ack->bumps) {
          if (to != settings.instance) continue;
          for (uint64_t seq : seqs) lease.book().heard_ack(ack->instance, seq);
        }
      }
    } else if (text.starts_with("E ")) {
      if (const auto end = cache::decode_window_end(text)) window_ended(*end, now);
    } else if (const auto m = cache::decode_invalidation(text)) {
      applied(*m, now);
    } else {
      log_debug("query cache: ignored a message on ", cache::invalidation_channel_name(settings.prefix), " (not ours)");
      return;
    }
    lease.wake_acknowledged(now);
  }

  // A bump: this process's own comes back (its bumper waits for that); another instance's is
  // applied here, then acknowledged.
  void applied(const cache::Invalidation& m, std::chrono::steady_clock::time_point now) {
    if (m.instance == settings.instance) {   // applied here before it was sent
      if (m.seq != 0) lease.book().heard_own_bump(m.seq, now);
      return;
    }
    if (m.whole_database) {
      cache.generations().bump_database(m.database);
      // DDL through another instance: names may resolve elsewhere now (before this is
      // acknowledged, so the writer's next statement through here is judged on new facts), and
      // server connections drop their shared prepared statements before their next use, as
      // after DDL through this one (a new table can hide the one they were parsed against).
      if (m.schema) {
        cache.drop_facts(m.database);
        schema_generation.fetch_add(1);
      }
    } else {
      for (cache::TableId t : m.tables) cache.generations().bump(t);
    }
    if (m.window) lease.book().hold_window(m.database, m.instance, m.seq, now, std::chrono::milliseconds(SharedTier::kWindowHoldMs));
    if (m.before_leases) {
      // An instance of a version before leases: it acknowledges its commits without waiting for
      // anyone, so this one stops serving under its lease (for a minute after the last such bump).
      constexpr std::chrono::minutes kLegacyHold{1};
      lease.book().hold_all(now, kLegacyHold);
    }
    QueryCacheCounters& c = cache.counters();
    c.shared_invalidations_received.fetch_add(1, std::memory_order_relaxed);
    const uint64_t unix_now = unix_ms_now();
    const uint64_t lag_ms = unix_now > m.sent_unix_ms ? unix_now - m.sent_unix_ms : 0;
    c.shared_invalidation_lag.observe(std::chrono::milliseconds(lag_ms));
    if (m.seq == 0) return;
    owed_acks[m.instance].push_back(m.seq);
    if (!acking) {   // one acknowledgement for what this turn of the loop applied
      acking = true;
      asio::co_spawn(ex, send_acks(self.lock()), asio::detached);
    }
  }

  // Another instance's CALL or DO windows on a database are over (SharedTier::close_window): it
  // bumped the epoch in Redis before, so what was filled meanwhile is dropped here too, and the
  // lease serves that database again.
  void window_ended(const cache::WindowEnd& m, std::chrono::steady_clock::time_point now) {
    if (m.instance == settings.instance) return;
    cache.generations().bump_database(m.database);
    lease.book().window_ended(m.database, m.instance, m.end, now);
    QueryCacheCounters& c = cache.counters();
    c.shared_invalidations_received.fetch_add(1, std::memory_order_relaxed);
    c.shared_window_ends_received.fetch_add(1, std::memory_order_relaxed);
  }

  void set_up(bool up) {
    if (up) lease.book().subscribed(std::chrono::steady_clock::now());
    else lease.book().unsubscribed();
    if (up == subscribed) return;
    subscribed = up;
    cache.counters().shared_channel_up.store(up ? 1 : 0, std::memory_order_relaxed);
    if (up) {
      log_info("query cache: listening to other instances' invalidations on Redis at ", redis_location(settings));
    } else {
      log_warning("query cache: the invalidation channel on Redis at ", redis_location(settings),
                  " is down; retrying (hits are confirmed against Redis meanwhile: no lease)");
    }
  }

  asio::any_io_executor ex;
  SharedTierSettings settings;
  QueryCache& cache;
  std::atomic<uint64_t>& schema_generation;   // Services'
  SharedLease& lease;
  RedisConnection redis;   // the subscription
  RedisConnection pub;     // lease pings and acknowledgements
  std::weak_ptr<State> self;
  std::map<std::string, std::vector<uint64_t>> owed_acks;   // by the bumping instance
  std::set<std::string> warned;   // instances whose lease length differs, said once each
  bool acking = false;
  bool subscribed = false;
  bool stopped = false;
};

SharedChannel::SharedChannel(asio::any_io_executor ex, const SharedTierSettings& settings, SslCtxPtr tls, QueryCache& cache,
                             std::atomic<uint64_t>& schema_generation)
    : state_(std::make_shared<State>(std::move(ex), settings, std::move(tls), cache, schema_generation)) {
  state_->self = state_;
}

SharedChannel::~SharedChannel() {
  state_->stopped = true;
  state_->redis.close();
  state_->pub.close();
  state_->lease.book().unsubscribed();
  state_->cache.counters().shared_channel_up.store(0, std::memory_order_relaxed);
}

void SharedChannel::start() {
  asio::co_spawn(state_->ex, run(state_), asio::detached);
  asio::co_spawn(state_->ex, keep_lease(state_), asio::detached);
  if (state_->settings.sentinel) asio::co_spawn(state_->ex, watch_sentinels(state_), asio::detached);
}

awaitable<void> SharedChannel::watch_sentinels(std::shared_ptr<State> state) {
  constexpr std::chrono::seconds kAskEvery{1};
  asio::steady_timer timer(state->ex);
  std::string failing;   // the last failure logged, so an outage of the sentinels is said once
  while (!state->stopped) {
    timer.expires_after(kAskEvery);
    error_code ec;
    co_await timer.async_wait(ec_awaitable(ec));
    if (state->stopped) co_return;
    // Recorded by the sentinel object: a new address moves its generation (see the header).
    const auto master = co_await state->settings.sentinel->resolve(state->ex, std::chrono::steady_clock::now() + kCallDeadline);
    if (state->stopped) co_return;
    if (!master && failing.empty()) {
      failing = master.error().message;
      log_warning("query cache: Redis Sentinel: ", failing, " (asked again every second; connections keep the master they have)");
    } else if (master && !failing.empty()) {
      failing.clear();
      log_info("query cache: Redis Sentinel answers again: the master is at ", conf::to_string(master->address));
    }
  }
}

awaitable<void> SharedChannel::send_acks(std::shared_ptr<State> state) {
  // After the handlers ready now: the bumps of this turn go in one message.
  co_await asio::post(state->ex, asio::use_awaitable);
  state->acking = false;
  if (state->stopped || state->owed_acks.empty()) co_return;
  cache::LeaseAck ack{.instance = state->settings.instance, .bumps = {}};
  for (auto& [to, seqs] : state->owed_acks) ack.bumps.emplace_back(to, std::move(seqs));
  state->owed_acks.clear();
  const std::string channel = cache::invalidation_channel_name(state->settings.prefix);
  const std::string text = cache::encode_lease_ack(ack);
  const auto deadline = std::chrono::steady_clock::now() + state->lease.book().length();
  const auto sent = co_await state->pub.command(redis_args("PUBLISH", channel, text), deadline);
  // Lost, the bumpers wait out their lease length: slower, never wrong.
  if (sent.ok() && !sent.reply.is_error()) state->cache.counters().shared_acks_sent.fetch_add(1, std::memory_order_relaxed);
}

awaitable<void> SharedChannel::keep_lease(std::shared_ptr<State> state) {
  cache::LeaseBook& book = state->lease.book();
  const auto every = book.length() / 5;
  const std::string channel = cache::invalidation_channel_name(state->settings.prefix);
  asio::steady_timer timer(state->ex);
  while (!state->stopped) {
    timer.expires_after(every);
    error_code ec;
    co_await timer.async_wait(ec_awaitable(ec));
    if (state->stopped) co_return;
    auto now = std::chrono::steady_clock::now();
    state->lease.wake_acknowledged(now);   // waits on instances that lapsed meanwhile
    if (!book.is_subscribed()) continue;
    // A subscription that stopped hearing its own pings is suspect (Redis dropped it, or it
    // lags far behind): given up, so the others stop waiting for this instance's
    // acknowledgements; run() subscribes again.
    const auto heard = std::max(book.last_own_ping_heard(), book.lease().subscribed_at);
    if (!state->redis.active() || now - heard > 3 * book.length()) {
      log_debug("query cache: the invalidation channel stopped hearing its lease pings: subscribing again");
      state->set_up(false);
      state->redis.close();
      continue;
    }
    const uint64_t id = book.ping_sending(now);
    if (id == 0) continue;
    const std::string text = cache::encode_lease_ping({.instance = state->settings.instance, .id = id});
    // Sent after `now`, so the lease it brings (from `now`) ends no later than it should.
    const auto sent = co_await state->pub.command(redis_args("PUBLISH", channel, text), now + book.length());
    if (state->stopped) co_return;
    (void)sent;   // a ping that did not go out renews nothing; the next one may
  }
}

awaitable<void> SharedChannel::run(std::shared_ptr<State> state) {
  const std::string channel = cache::invalidation_channel_name(state->settings.prefix);
  asio::steady_timer timer(state->ex);
  std::chrono::milliseconds backoff = kFirstBackoff;
  while (!state->stopped) {
    const auto subscribed = co_await state->redis.command(redis_args("SUBSCRIBE", channel),
                                                          std::chrono::steady_clock::now() + kCallDeadline);
    if (state->stopped) co_return;
    if (subscribed.ok() && !subscribed.reply.is_error()) {
      state->set_up(true);
      backoff = kFirstBackoff;
      // Subscribed on this connection: PING (["pong", ""] while subscribed) until it fails,
      // the connection is a new one (not subscribed), or keep_lease gave it up.
      const uint64_t connects = state->redis.stats().connects;
      for (;;) {
        timer.expires_after(kPingEvery);
        error_code ec;
        co_await timer.async_wait(ec_awaitable(ec));
        if (state->stopped) co_return;
        if (!state->lease.book().is_subscribed()) break;
        const auto pong = co_await state->redis.command(redis_args("PING"), std::chrono::steady_clock::now() + kCallDeadline);
        if (state->stopped) co_return;
        if (!pong.ok() || pong.reply.is_error() || state->redis.stats().connects != connects) break;
      }
      state->redis.close();
    }
    state->set_up(false);
    timer.expires_after(backoff);
    error_code ec;
    co_await timer.async_wait(ec_awaitable(ec));
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

}  // namespace pgrelay::proxy
