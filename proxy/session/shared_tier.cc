// The query cache's Redis tier for one worker: versions, answers, bumps, the breaker.
#include "proxy/session/shared_tier.h"

#include <openssl/rand.h>
#include <xxhash.h>

#include <charconv>

#include "cache/shared_keys.h"
#include "proxy/base/log.h"
#include "proxy/session/query_cache.h"

namespace pgrelay::proxy {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{250};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

// A hash field's integer: nil is 0 (never bumped); anything else but digits is not ours.
bool field_value(const RedisReply& r, uint64_t& out) {
  if (r.is_nil()) {
    out = 0;
    return true;
  }
  if (r.type != RedisReply::Type::kString) return false;
  const char* end = r.str.data() + r.str.size();
  auto [p, ec] = std::from_chars(r.str.data(), end, out);
  return ec == std::errc() && p == end;
}

bool all_ok(const std::vector<RedisResult>& results, size_t expected, std::string& why) {
  if (results.size() != expected) {
    why = "short reply";
    return false;
  }
  for (const RedisResult& r : results) {
    if (!r.ok()) {
      why = std::string(to_string(r.status)) + (r.error.empty() ? "" : ": " + r.error);
      return false;
    }
    if (r.reply.is_error()) {
      why = r.reply.str;
      return false;
    }
  }
  return true;
}

}  // namespace

std::string random_hex_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    const uint64_t t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    for (size_t i = 0; i < sizeof bytes; ++i) bytes[i] = static_cast<unsigned char>((t >> ((i % 8) * 8)) ^ (i * 131));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

SharedTier::SharedTier(asio::any_io_executor ex, const SharedTierSettings& settings, SslCtxPtr tls,
                       QueryCacheCounters& counters)
    : ex_(ex),
      settings_(settings),
      redis_(std::move(ex), RedisOptions{.endpoint = settings.endpoint,
                                         .tls_ctx = std::move(tls),
                                         .tls_mode = conf::ServerTlsMode::kVerifyFull,
                                         .connect_timeout = std::chrono::milliseconds(1000),
                                         .on_message = nullptr}),
      counters_(counters) {}

SharedTier::~SharedTier() = default;

RedisConnection::Deadline SharedTier::deadline() const { return std::chrono::steady_clock::now() + settings_.timeout; }

bool SharedTier::available() const { return backoff_.count() == 0 || std::chrono::steady_clock::now() >= closed_at_; }

void SharedTier::failed(const std::string& what) {
  counters_.shared_failures.fetch_add(1, std::memory_order_relaxed);
  if (backoff_.count() == 0) {
    counters_.shared_breaker_opens.fetch_add(1, std::memory_order_relaxed);
    counters_.shared_breakers_open.fetch_add(1, std::memory_order_relaxed);
    log_warning("query cache: Redis at ", conf::redacted_redis_url(settings_.endpoint), " failed (", what,
                "): the shared tier is off for this worker, retried in ", kFirstBackoff.count(), " ms");
    backoff_ = kFirstBackoff;
  } else {
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    log_debug("query cache: Redis failed again (", what, "), next try in ", backoff_.count(), " ms");
  }
  closed_at_ = std::chrono::steady_clock::now() + backoff_;
}

void SharedTier::succeeded() {
  if (backoff_.count() == 0) return;
  backoff_ = {};
  counters_.shared_breakers_open.fetch_sub(1, std::memory_order_relaxed);
  log_info("query cache: Redis at ", conf::redacted_redis_url(settings_.endpoint), " answers again: the shared tier is back on");
}

cache::ReadSet SharedTier::read_versions(cache::DatabaseId database, std::span<const cache::TableId> tables,
                                         const RedisReply& reply, bool& complete) {
  // The epoch is the hash's id and its counter together, so a hash made again (with a new id)
  // never repeats a version of the one before it.
  // HMGET hash id e <table>...
  cache::ReadSet out{.database = database, .epoch = 0, .tables = {}};
  complete = false;
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != tables.size() + 2) return out;
  const RedisReply& id = reply.elements[0];
  uint64_t e = 0;
  if (id.type != RedisReply::Type::kString || id.str.empty() || !field_value(reply.elements[1], e)) return out;
  out.epoch = XXH3_64bits_withSeed(id.str.data(), id.str.size(), e);
  out.tables.reserve(tables.size());
  for (size_t i = 0; i < tables.size(); ++i) {
    uint64_t g = 0;
    if (!field_value(reply.elements[i + 2], g)) return out;
    out.tables.push_back({tables[i], g});
  }
  complete = true;
  return out;
}

awaitable<bool> SharedTier::pay_owed() {
  std::vector<std::string> hashes;
  for (cache::DatabaseId d : owed_) hashes.push_back(cache::generations_key_name(settings_.prefix, d));
  const std::string channel = cache::invalidation_channel_name(settings_.prefix);
  std::vector<std::string> messages;
  for (cache::DatabaseId d : owed_) {
    messages.push_back(cache::encode_invalidation(
        {.instance = settings_.instance, .database = d, .sent_unix_ms = unix_ms_now(), .whole_database = true, .tables = {}}));
  }
  std::vector<RedisConnection::Args> commands;
  for (const std::string& h : hashes) commands.push_back(redis_args("HINCRBY", h, "e", "1"));
  for (const std::string& m : messages) commands.push_back(redis_args("PUBLISH", channel, m));
  const auto results = co_await redis_.pipeline(std::move(commands), deadline());
  std::string why;
  if (!all_ok(results, hashes.size() + messages.size(), why)) {
    failed(why);
    co_return false;
  }
  counters_.shared_invalidations_sent.fetch_add(messages.size(), std::memory_order_relaxed);
  counters_.shared_bumps.fetch_add(hashes.size(), std::memory_order_relaxed);
  owed_.clear();
  co_return true;
}

awaitable<SharedTier::Check> SharedTier::check(cache::DatabaseId database, std::span<const cache::TableId> tables,
                                               std::string answer_key) {
  Check out;
  if (!available()) co_return out;
  if (!owed_.empty()) {
    const bool paid = co_await pay_owed();
    if (!paid) co_return out;
  }
  const std::string hash = cache::generations_key_name(settings_.prefix, database);
  std::vector<std::string> fields;
  fields.reserve(tables.size());
  for (cache::TableId t : tables) fields.push_back(cache::table_field(t));
  auto versions = [&] {
    RedisConnection::Args a{"HMGET", hash, "id", "e"};
    for (const std::string& f : fields) a.push_back(f);
    return a;
  };
  const std::string windows = cache::windows_key_name(settings_.prefix, database);
  const std::string lapsed = std::to_string(unix_ms_now() - 1000);
  std::vector<RedisConnection::Args> commands;
  commands.push_back(versions());
  commands.push_back(redis_args("ZRANGEBYSCORE", windows, lapsed, "+inf", "LIMIT", "0", "1"));
  if (!answer_key.empty()) commands.push_back(redis_args("GET", answer_key));
  const size_t expected = commands.size();
  const uint64_t connects = redis_.stats().connects;
  auto results = co_await redis_.pipeline(std::move(commands), deadline());
  std::string why;
  if (!all_ok(results, expected, why)) {
    failed(why);
    co_return out;
  }
  bool complete = false;
  out.now = read_versions(database, tables, results[0].reply, complete);
  if (!complete) {
    // No id: the hash is new, or Redis lost it. Named now; whoever names it first wins.
    const std::string id = random_hex_id();   // random: a hash made again never repeats the one before
    std::vector<RedisConnection::Args> again;
    again.push_back(redis_args("HSETNX", hash, "id", id));
    again.push_back(versions());
    const auto named = co_await redis_.pipeline(std::move(again), deadline());
    if (!all_ok(named, 2, why)) {
      failed(why);
      co_return out;
    }
    out.now = read_versions(database, tables, named[1].reply, complete);
    if (!complete) {
      failed("the versions hash " + hash + " holds something pgrelay did not write");
      co_return out;
    }
  }
  if (connects_seen_ != 0 && redis_.stats().connects != connects) {
    // This answer came over a new connection: Redis may have restarted from an older snapshot,
    // with versions older than entries in memory were read under. Not trusted; the epochs of
    // the databases this worker knows are bumped first thing next time.
    owed_.insert(known_.begin(), known_.end());
    owed_.insert(database);
    connects_seen_ = redis_.stats().connects;
    co_return out;
  }
  connects_seen_ = redis_.stats().connects;
  known_.insert(database);
  if (!answer_key.empty() && results[2].reply.type == RedisReply::Type::kString) {
    const auto* p = reinterpret_cast<const std::byte*>(results[2].reply.str.data());
    out.value.emplace(p, p + results[2].reply.str.size());
  }
  // Any holder's window not lapsed (by its holder's clock: a second of slack for clocks that disagree).
  out.window_open = results[1].reply.type == RedisReply::Type::kArray && !results[1].reply.elements.empty();
  out.ok = true;
  succeeded();
  co_return out;
}

awaitable<bool> SharedTier::open_window(cache::DatabaseId database) {
  ++windows_[database];
  if (!holding_) {
    holding_ = true;
    asio::co_spawn(ex_, hold_windows(), asio::detached);
  }
  if (!available()) {
    owed_.insert(database);
    co_return false;
  }
  const std::string hash = cache::generations_key_name(settings_.prefix, database);
  const std::string windows = cache::windows_key_name(settings_.prefix, database);
  const uint64_t now = unix_ms_now();
  const std::string until = std::to_string(now + kWindowHoldMs);
  const std::string forgotten = std::to_string(now - 6 * kWindowHoldMs);   // holders that died long ago
  const std::string channel = cache::invalidation_channel_name(settings_.prefix);
  const std::string message = cache::encode_invalidation(
      {.instance = settings_.instance, .database = database, .sent_unix_ms = now, .whole_database = true, .tables = {}});
  std::vector<RedisConnection::Args> commands;
  commands.push_back(redis_args("HINCRBY", hash, "e", "1"));
  commands.push_back(redis_args("ZADD", windows, until, holder_));
  commands.push_back(redis_args("ZREMRANGEBYSCORE", windows, "-inf", forgotten));
  commands.push_back(redis_args("PUBLISH", channel, message));
  const auto results = co_await redis_.pipeline(std::move(commands), deadline());
  std::string why;
  if (!all_ok(results, 4, why)) {
    failed(why);
    owed_.insert(database);
    co_return false;
  }
  known_.insert(database);
  counters_.shared_bumps.fetch_add(1, std::memory_order_relaxed);
  counters_.shared_invalidations_sent.fetch_add(1, std::memory_order_relaxed);
  succeeded();
  co_return true;
}

void SharedTier::close_window(cache::DatabaseId database) {
  auto it = windows_.find(database);
  if (it == windows_.end() || --it->second > 0) return;
  windows_.erase(it);
  // This worker holds no window there now: its member goes (a holder that dies lapses instead).
  asio::co_spawn(ex_, release_window(database), asio::detached);
}

awaitable<void> SharedTier::release_window(cache::DatabaseId database) {
  // Another window opened meanwhile (its ZADD is already queued ahead of this): keep it.
  if (windows_.contains(database) || !available()) co_return;
  const std::string windows = cache::windows_key_name(settings_.prefix, database);
  const auto r = co_await redis_.command(redis_args("ZREM", windows, holder_), deadline());
  if (!r.ok() || r.reply.is_error()) failed(r.ok() ? r.reply.str : std::string(to_string(r.status)));
}

awaitable<void> SharedTier::hold_windows() {
  constexpr std::chrono::milliseconds kRenewEvery{kWindowHoldMs / 4};
  asio::steady_timer timer(ex_);
  while (!windows_.empty()) {
    timer.expires_after(kRenewEvery);
    error_code ec;
    co_await timer.async_wait(ec_awaitable(ec));
    if (windows_.empty()) break;
    if (!available()) continue;
    const std::string until = std::to_string(unix_ms_now() + kWindowHoldMs);
    std::vector<std::string> keys;
    for (const auto& [database, count] : windows_) keys.push_back(cache::windows_key_name(settings_.prefix, database));
    std::vector<RedisConnection::Args> commands;
    for (const std::string& k : keys) commands.push_back(redis_args("ZADD", k, until, holder_));
    const auto results = co_await redis_.pipeline(std::move(commands), deadline());
    std::string why;
    if (!all_ok(results, keys.size(), why)) failed(why);
  }
  holding_ = false;
}

awaitable<bool> SharedTier::bump(cache::DatabaseId database, std::vector<cache::TableId> tables, bool whole_database) {
  if (!available()) {
    owed_.insert(database);
    counters_.shared_bumps_owed.fetch_add(1, std::memory_order_relaxed);
    co_return false;
  }
  if (!owed_.empty()) {
    const bool paid = co_await pay_owed();
    if (!paid) {
      owed_.insert(database);
      counters_.shared_bumps_owed.fetch_add(1, std::memory_order_relaxed);
      co_return false;
    }
  }
  const std::string hash = cache::generations_key_name(settings_.prefix, database);
  std::vector<std::string> fields;
  if (whole_database) {
    fields.push_back("e");
  } else {
    for (cache::TableId t : tables) fields.push_back(cache::table_field(t));
  }
  // The bump, then the word to the other instances (cache/shared_keys.h): one round trip.
  const std::string channel = cache::invalidation_channel_name(settings_.prefix);
  const std::string message = cache::encode_invalidation({.instance = settings_.instance,
                                                          .database = database,
                                                          .sent_unix_ms = unix_ms_now(),
                                                          .whole_database = whole_database,
                                                          .tables = std::move(tables)});
  std::vector<RedisConnection::Args> commands;
  for (const std::string& f : fields) commands.push_back(redis_args("HINCRBY", hash, f, "1"));
  commands.push_back(redis_args("PUBLISH", channel, message));
  const auto results = co_await redis_.pipeline(std::move(commands), deadline());
  std::string why;
  if (!all_ok(results, fields.size() + 1, why)) {
    failed(why);
    owed_.insert(database);
    counters_.shared_bumps_owed.fetch_add(1, std::memory_order_relaxed);
    co_return false;
  }
  known_.insert(database);
  counters_.shared_bumps.fetch_add(fields.size(), std::memory_order_relaxed);
  counters_.shared_invalidations_sent.fetch_add(1, std::memory_order_relaxed);
  succeeded();
  co_return true;
}

awaitable<Result<size_t>> SharedTier::bump_all() {
  // An operator waits for this one: a generous deadline per call, not redis_timeout.
  constexpr std::chrono::seconds kAdminDeadline{2};
  const std::string pattern = settings_.prefix + ":g:*";
  std::vector<std::string> hashes;
  std::string cursor = "0";
  do {
    const auto r = co_await redis_.command(redis_args("SCAN", cursor, "MATCH", pattern, "COUNT", "1000"),
                                           std::chrono::steady_clock::now() + kAdminDeadline);
    const RedisReply& reply = r.reply;
    if (!r.ok() || reply.type != RedisReply::Type::kArray || reply.elements.size() != 2 ||
        reply.elements[0].type != RedisReply::Type::kString || reply.elements[1].type != RedisReply::Type::kArray) {
      co_return Error{"58000", "Redis did not list the versions hashes (" +
                                   (r.ok() ? (reply.is_error() ? reply.str : std::string("unexpected reply")) : std::string(to_string(r.status))) + ")"};
    }
    cursor = reply.elements[0].str;
    for (const RedisReply& k : reply.elements[1].elements) {
      if (k.type == RedisReply::Type::kString) hashes.push_back(k.str);
    }
  } while (cursor != "0");
  if (hashes.empty()) co_return size_t{0};
  std::vector<RedisConnection::Args> commands;
  commands.reserve(hashes.size());
  for (const std::string& h : hashes) commands.push_back(redis_args("HINCRBY", h, "e", "1"));
  const auto results = co_await redis_.pipeline(std::move(commands), std::chrono::steady_clock::now() + kAdminDeadline);
  std::string why;
  if (!all_ok(results, hashes.size(), why)) co_return Error{"58000", "Redis did not take the epoch bumps (" + why + ")"};
  counters_.shared_bumps.fetch_add(hashes.size(), std::memory_order_relaxed);
  co_return hashes.size();
}

void SharedTier::store(std::string key, std::vector<std::byte> value, std::chrono::milliseconds ttl) {
  if (!available() || ttl.count() <= 0) return;
  // Nothing waits for it; a failure only costs other instances a hit.
  asio::co_spawn(ex_, store_now(std::move(key), std::move(value), std::to_string(ttl.count())), asio::detached);
}

awaitable<void> SharedTier::store_now(std::string key, std::vector<std::byte> value, std::string px) {
  const std::string_view bytes(reinterpret_cast<const char*>(value.data()), value.size());
  const auto r = co_await redis_.command(redis_args("SET", key, bytes, "PX", px), deadline());
  if (!r.ok() || r.reply.is_error()) {
    counters_.shared_store_failures.fetch_add(1, std::memory_order_relaxed);
  } else {
    counters_.shared_stores.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace pgrelay::proxy
