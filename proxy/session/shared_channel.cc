// The invalidation channel: SUBSCRIBE, apply other instances' bumps, PING to notice a dead link.
#include "proxy/session/shared_channel.h"

#include "cache/shared_keys.h"
#include "proxy/base/log.h"
#include "proxy/session/query_cache.h"

namespace pgrelay::proxy {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{250};
constexpr std::chrono::milliseconds kMaxBackoff{5000};
constexpr std::chrono::seconds kPingEvery{1};
constexpr std::chrono::seconds kCallDeadline{2};

}  // namespace

struct SharedChannel::State {
  State(asio::any_io_executor e, const SharedTierSettings& s, SslCtxPtr tls, QueryCache& c)
      : ex(e), settings(s), cache(c), redis(e, options(s, std::move(tls), this)) {}

  static RedisOptions options(const SharedTierSettings& s, SslCtxPtr tls, State* self) {
    return RedisOptions{.endpoint = s.endpoint,
                        .tls_ctx = std::move(tls),
                        .tls_mode = conf::ServerTlsMode::kVerifyFull,
                        .connect_timeout = std::chrono::milliseconds(1000),
                        .on_message = [self](const RedisReply& m) { self->heard(m.elements[2].str); }};
  }

  // Another instance bumped: the same bump here (its entries of those tables are stale now).
  void heard(const std::string& text) {
    const auto m = cache::decode_invalidation(text);
    if (!m) {
      log_debug("query cache: ignored a message on ", cache::invalidation_channel_name(settings.prefix), " (not ours)");
      return;
    }
    if (m->instance == settings.instance) return;   // this process applied its own bumps already
    if (m->whole_database) {
      cache.generations().bump_database(m->database);
    } else {
      for (cache::TableId t : m->tables) cache.generations().bump(t);
    }
    QueryCacheCounters& c = cache.counters();
    c.shared_invalidations_received.fetch_add(1, std::memory_order_relaxed);
    const uint64_t now = unix_ms_now();
    const uint64_t lag_ms = now > m->sent_unix_ms ? now - m->sent_unix_ms : 0;
    c.shared_invalidation_lag.observe(std::chrono::milliseconds(lag_ms));
  }

  void set_up(bool up) {
    if (up == subscribed) return;
    subscribed = up;
    cache.counters().shared_channel_up.store(up ? 1 : 0, std::memory_order_relaxed);
    if (up) {
      log_info("query cache: listening to other instances' invalidations on Redis at ", conf::redacted_redis_url(settings.endpoint));
    } else {
      log_warning("query cache: the invalidation channel on Redis at ", conf::redacted_redis_url(settings.endpoint),
                  " is down; retrying (hits are still confirmed against Redis)");
    }
  }

  asio::any_io_executor ex;
  SharedTierSettings settings;
  QueryCache& cache;
  RedisConnection redis;
  bool subscribed = false;
  bool stopped = false;
};

SharedChannel::SharedChannel(asio::any_io_executor ex, const SharedTierSettings& settings, SslCtxPtr tls, QueryCache& cache)
    : state_(std::make_shared<State>(std::move(ex), settings, std::move(tls), cache)) {}

SharedChannel::~SharedChannel() {
  state_->stopped = true;
  state_->redis.close();
  state_->cache.counters().shared_channel_up.store(0, std::memory_order_relaxed);
}

void SharedChannel::start() { asio::co_spawn(state_->ex, run(state_), asio::detached); }

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
      // Subscribed on this connection: PING (["pong", ""] while subscribed) until it fails or
      // the connection is a new one, which is not subscribed.
      const uint64_t connects = state->redis.stats().connects;
      for (;;) {
        timer.expires_after(kPingEvery);
        error_code ec;
        co_await timer.async_wait(ec_awaitable(ec));
        if (state->stopped) co_return;
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
