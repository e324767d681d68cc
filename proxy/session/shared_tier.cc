// The query cache's Redis tier for one worker: versions, answers, bumps, the breaker.
#include "proxy/session/shared_tier.h"

#include <openssl/rand.h>
#include <charconv>

#include "cache/lease_messages.h"
#include "cache/shared_keys.h"
#include "proxy/base/log.h"
#include "proxy/session/query_cache.h"
#include "proxy/session/shared_lease.h"

namespace pgrelay::proxy {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{250};
constexpr std::chrono::milliseconds kMaxBackoff{5000};
// A breaker that opens again within this long of closing is flapping: its backoff keeps growing
// and its log lines are debug.
constexpr std::chrono::seconds kSettled{30};

}  // namespace

bool SharedTier::field_value(const RedisReply& r, uint64_t& out) {
  if (r.is_nil()) {
    out = 0;
    return true;
  }
  if (r.type != RedisReply::Type::kString) return false;
  const char* end = r.str.data() + r.str.size();
  auto [p, ec] = std::from_chars(r.str.data(), end, out);
  return ec == std::errc() && p == end;
}

bool SharedTier::all_ok(const std::vector<RedisResult>& results, size_t expected, std::string& why) {
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

std::string redis_location(const SharedTierSettings& s) {
  if (!s.sentinel) return conf::redacted_redis_url(s.endpoint);
  const std::string at = s.sentinel->master();
  const std::string name = "the master \"" + s.sentinel->settings().master_name + "\"";
  if (at.empty()) return name + " (not found yet, by Redis Sentinel)";
  return at + " (" + name + ", by Redis Sentinel)";
}

SharedTier::SharedTier(asio::any_io_executor ex, const SharedTierSettings& settings, SslCtxPtr tls,
                       QueryCacheCounters& counters, SharedLease* lease)
    : ex_(ex),
      settings_(settings),
      redis_tls_(std::move(tls)),
      redis_(std::move(ex), RedisOptions{.endpoint = settings.endpoint,
                                         .tls_ctx = redis_tls_,
                                         .tls_mode = conf::ServerTlsMode::kVerifyFull,
                                         .connect_timeout = std::chrono::milliseconds(1000),
                                         .sentinel = settings.sentinel,
                                         .on_message = nullptr}),
      writes_(ex_, RedisOptions{.endpoint = settings.endpoint,
                                .tls_ctx = redis_tls_,
                                .tls_mode = conf::ServerTlsMode::kVerifyFull,
                                .connect_timeout = std::chrono::milliseconds(1000),
                                .sentinel = settings.sentinel,
                                .on_message = nullptr}),
      counters_(counters),
      lease_(lease) {}

SharedTier::~SharedTier() = default;

RedisConnection::Deadline SharedTier::deadline() const { return std::chrono::steady_clock::now() + settings_.timeout; }

RedisConnection::Deadline SharedTier::bump_deadline() const {
  return std::chrono::steady_clock::now() + std::max(settings_.timeout * 20, std::chrono::milliseconds(100));
}

bool SharedTier::available() const { return !open_ || std::chrono::steady_clock::now() >= closed_at_; }

void SharedTier::failed(const std::string& what) {
  counters_.shared_failures.fetch_add(1, std::memory_order_relaxed);
  const auto now = std::chrono::steady_clock::now();
  if (!open_) {
    open_ = true;
    counters_.shared_breaker_opens.fetch_add(1, std::memory_order_relaxed);
    counters_.shared_breakers_open.fetch_add(1, std::memory_order_relaxed);
    if (backoff_.count() != 0 && now - closed_since_ < kSettled) {
      // Flapping (Redis slower than redis_timeout now and then): keep backing off, quietly.
      backoff_ = std::min(backoff_ * 2, kMaxBackoff);
      log_debug("query cache: Redis failed again soon after recovering (", what, "), next try in ", backoff_.count(), " ms");
    } else {
      backoff_ = kFirstBackoff;
      log_warning("query cache: Redis at ", redis_location(settings_), " failed (", what,
                  "): the shared tier is off for this worker, retried in ", backoff_.count(), " ms");
    }
  } else {
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    log_debug("query cache: Redis failed again (", what, "), next try in ", backoff_.count(), " ms");
  }
  closed_at_ = now + backoff_;
}

void SharedTier::succeeded() {
  if (!open_) return;
  open_ = false;
  const auto now = std::chrono::steady_clock::now();
  counters_.shared_breakers_open.fetch_sub(1, std::memory_order_relaxed);
  // Said once per outage: a recovery that follows a failure within kSettled of the last one
  // (flapping) is not news.
  if (now - closed_since_ >= kSettled) {
    log_info("query cache: Redis at ", redis_location(settings_), " answers again: the shared tier is back on");
  }
  closed_since_ = now;
}

std::string SharedTier::whole_database_message(cache::DatabaseId database, uint64_t seq, bool window) const {
  return cache::encode_invalidation({.instance = settings_.instance,
                                     .database = database,
                                     .sent_unix_ms = unix_ms_now(),
                                     .whole_database = true,
                                     .tables = {},
                                     .seq = seq,
                                     .window = window,
                                     .schema = false,
                                     .before_leases = false});
}

uint64_t SharedTier::next_seq() { return lease_ ? lease_->book().bump_starting() : 0; }

awaitable<void> SharedTier::acknowledged(std::vector<uint64_t> seqs, std::chrono::steady_clock::time_point replied, bool ok) {
  if (!lease_) co_return;
  // Not taken (Redis away, or its reply late): the instances under a lease may never hear it.
  // When some were live a moment ago, their leases are let run out (one lease length: they
  // cannot renew without Redis either) before the commit is acknowledged; when none were,
  // there is nothing to wait for (the bump is owed, as without leases).
  if (!ok && lease_->book().live_peers(std::chrono::steady_clock::now()) == 0) {
    for (uint64_t seq : seqs) lease_->book().bump_done(seq);
    co_return;
  }
  for (uint64_t seq : seqs) {
    // Every seq was published at once: waiting for each in turn waits the longest of them.
    counters_.shared_bump_waits.fetch_add(1, std::memory_order_relaxed);
    const bool heard = co_await lease_->wait_acknowledged(seq, replied);
    if (!heard) counters_.shared_bump_wait_timeouts.fetch_add(1, std::memory_order_relaxed);
  }
  if (!seqs.empty()) counters_.shared_bump_wait.observe(std::chrono::steady_clock::now() - replied);
}

void SharedTier::follow_failover() {
  if (!settings_.sentinel) return;
  const uint64_t generation = settings_.sentinel->generation();
  if (generation == sentinel_generation_) return;
  // The master moved: the promoted replica may lack the last bumps the old one took
  // (replication is asynchronous), so no version read before the switch is trusted after it.
  if (sentinel_generation_ != 0) owed_.insert(known_.begin(), known_.end());
  sentinel_generation_ = generation;
}

awaitable<bool> SharedTier::pay_owed() {
  std::vector<std::string> hashes;
  for (cache::DatabaseId d : owed_) hashes.push_back(cache::generations_key_name(settings_.prefix, d));
  const std::string channel = cache::invalidation_channel_name(settings_.prefix);
  std::vector<std::string> messages;
  std::vector<uint64_t> seqs;
  for (cache::DatabaseId d : owed_) {
    seqs.push_back(next_seq());
    messages.push_back(whole_database_message(d, seqs.back(), false));
  }
  // Each hash is named anew (a new id) as well as bumped: the epoch is its id and counter together,
  // so no version it had before can come back, even where Redis lost some bumps and not others
  // (a restart from an older snapshot, a failover to a replica that lagged).
  std::vector<std::string> ids;
  for (size_t i = 0; i < hashes.size(); ++i) ids.push_back(random_hex_id());
  std::vector<RedisConnection::Args> commands;
  for (size_t i = 0; i < hashes.size(); ++i) {
    commands.push_back(redis_args("HSET", hashes[i], "id", ids[i]));
    commands.push_back(redis_args("HINCRBY", hashes[i], "e", "1"));
  }
  for (const std::string& m : messages) commands.push_back(redis_args("PUBLISH", channel, m));
  const auto results = co_await writes_.pipeline(std::move(commands), bump_deadline());
  const auto replied = std::chrono::steady_clock::now();
  std::string why;
  const bool ok = all_ok(results, 2 * hashes.size() + messages.size(), why);
  co_await acknowledged(std::move(seqs), replied, ok);
  if (!ok) {
    failed(why);
    co_return false;
  }
  counters_.shared_invalidations_sent.fetch_add(messages.size(), std::memory_order_relaxed);
  counters_.shared_bumps.fetch_add(hashes.size(), std::memory_order_relaxed);
  owed_.clear();
  co_return true;
}

awaitable<bool> SharedTier::open_window(cache::DatabaseId database) {
  ++windows_[database];
  if (!holding_) {
    holding_ = true;
    asio::co_spawn(ex_, hold_windows(), asio::detached);
  }
  // Tried even while the breaker is open, as a bump is (see bump()).
  const std::string hash = cache::generations_key_name(settings_.prefix, database);
  const std::string windows = cache::windows_key_name(settings_.prefix, database);
  const uint64_t now = unix_ms_now();
  const std::string until = std::to_string(now + kWindowHoldMs);
  const std::string forgotten = std::to_string(now - 6 * kWindowHoldMs);   // holders that died long ago
  const std::string channel = cache::invalidation_channel_name(settings_.prefix);
  // A window message: instances serving under a lease stop doing so for this database until
  // the hold lapses (renewed below), and the statement waits until they have heard it.
  const uint64_t seq = lease_ ? lease_->book().window_opening(database) : 0;
  const std::string message = whole_database_message(database, seq, true);
  std::vector<RedisConnection::Args> commands;
  commands.push_back(redis_args("HINCRBY", hash, "e", "1"));
  commands.push_back(redis_args("ZADD", windows, until, holder_));
  commands.push_back(redis_args("ZREMRANGEBYSCORE", windows, "-inf", forgotten));
  commands.push_back(redis_args("PUBLISH", channel, message));
  const auto results = co_await writes_.pipeline(std::move(commands), bump_deadline());
  const auto replied = std::chrono::steady_clock::now();
  std::string why;
  const bool ok = all_ok(results, 4, why);
  std::vector<uint64_t> seqs{seq};
  co_await acknowledged(std::move(seqs), replied, ok);
  if (!ok) {
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
  // Counted per process, each open_window once: the end goes out with the process's last one.
  const uint64_t end = lease_ ? lease_->book().window_closing(database) : 0;
  auto it = windows_.find(database);
  if (it == windows_.end() || --it->second > 0) return;
  windows_.erase(it);
  // This worker holds no window there now: its member goes (a holder that dies lapses instead).
  asio::co_spawn(ex_, release_window(database, end), asio::detached);
}

awaitable<void> SharedTier::release_window(cache::DatabaseId database, uint64_t end) {
  // Another window opened meanwhile (its ZADD is already queued ahead of this): keep it. Its
  // number is past `end`, and its own close says when it is over.
  if (windows_.contains(database)) co_return;
  // Args are views: the words live here until the pipeline returns.
  const std::string windows = cache::windows_key_name(settings_.prefix, database);
  const std::string hash = cache::generations_key_name(settings_.prefix, database);
  const std::string channel = cache::invalidation_channel_name(settings_.prefix);
  const std::string message = cache::encode_window_end({.instance = settings_.instance, .database = database, .end = end});
  std::vector<RedisConnection::Args> commands;
  // The statement's commits are all visible: the epoch first (whatever was read meanwhile is
  // stale, here and on every instance that hears the end), then the set, then the word.
  if (end != 0) commands.push_back(redis_args("HINCRBY", hash, "e", "1"));
  commands.push_back(redis_args("ZREM", windows, holder_));
  if (end != 0) commands.push_back(redis_args("PUBLISH", channel, message));
  const size_t expected = commands.size();
  const auto results = co_await writes_.pipeline(std::move(commands), bump_deadline());
  std::string why;
  if (!all_ok(results, expected, why)) {
    failed(why);   // the others' holds lapse instead
    co_return;
  }
  if (end != 0) {
    counters_.shared_bumps.fetch_add(1, std::memory_order_relaxed);
    counters_.shared_invalidations_sent.fetch_add(1, std::memory_order_relaxed);
  }
}

awaitable<void> SharedTier::hold_windows() {
  constexpr std::chrono::milliseconds kRenewEvery{kWindowHoldMs / 4};
  asio::steady_timer timer(ex_);
  while (!windows_.empty()) {
    timer.expires_after(kRenewEvery);
    error_code ec;
    co_await timer.async_wait(ec_awaitable(ec));
    if (windows_.empty()) break;
    const std::string until = std::to_string(unix_ms_now() + kWindowHoldMs);
    std::vector<std::string> keys;
    std::vector<std::string> messages;   // the lease holders' hold, renewed with the set's
    for (const auto& [database, count] : windows_) {
      keys.push_back(cache::windows_key_name(settings_.prefix, database));
      messages.push_back(whole_database_message(database, 0, true));
    }
    const std::string channel = cache::invalidation_channel_name(settings_.prefix);
    std::vector<RedisConnection::Args> commands;
    for (const std::string& k : keys) commands.push_back(redis_args("ZADD", k, until, holder_));
    for (const std::string& m : messages) commands.push_back(redis_args("PUBLISH", channel, m));
    const auto results = co_await writes_.pipeline(std::move(commands), bump_deadline());
    std::string why;
    if (!all_ok(results, keys.size() + messages.size(), why)) failed(why);
  }
  holding_ = false;
}

awaitable<bool> SharedTier::bump(cache::DatabaseId database, std::vector<cache::TableId> tables, bool whole_database, bool schema) {
  // Not skipped while the breaker is open: the breaker spares lookups a slow Redis, but a bump
  // that does not reach Redis lets other instances serve what this commit changed. So every
  // bump is tried, with a longer deadline (bump_deadline); only a failure makes it owed.
  follow_failover();
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
  const uint64_t seq = next_seq();
  const std::string message = cache::encode_invalidation({.instance = settings_.instance,
                                                          .database = database,
                                                          .sent_unix_ms = unix_ms_now(),
                                                          .whole_database = whole_database,
                                                          .tables = std::move(tables),
                                                          .seq = seq,
                                                          .window = false,
                                                          .schema = whole_database && schema,
                                                          .before_leases = false});
  std::vector<RedisConnection::Args> commands;
  for (const std::string& f : fields) commands.push_back(redis_args("HINCRBY", hash, f, "1"));
  commands.push_back(redis_args("PUBLISH", channel, message));
  const auto results = co_await writes_.pipeline(std::move(commands), bump_deadline());
  const auto replied = std::chrono::steady_clock::now();
  std::string why;
  const bool ok = all_ok(results, fields.size() + 1, why);
  // Then the instances serving under a lease have heard it (or one lease length has passed)
  // before the commit's ReadyForQuery: see shared_lease.h.
  std::vector<uint64_t> seqs{seq};
  co_await acknowledged(std::move(seqs), replied, ok);
  if (!ok) {
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
    const auto r = co_await writes_.command(redis_args("SCAN", cursor, "MATCH", pattern, "COUNT", "1000"),
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
  // Published too, so instances serving under a lease drop their memory answers as well.
  const std::string channel = cache::invalidation_channel_name(settings_.prefix);
  std::vector<std::string> messages;
  std::vector<uint64_t> seqs;
  for (const std::string& h : hashes) {
    const auto database = cache::generations_key_database(settings_.prefix, h);
    if (!database) continue;   // not a name pgrelay made (the glob matched something else)
    seqs.push_back(next_seq());
    messages.push_back(whole_database_message(*database, seqs.back(), false));
  }
  std::vector<RedisConnection::Args> commands;
  commands.reserve(hashes.size() + messages.size());
  for (const std::string& h : hashes) commands.push_back(redis_args("HINCRBY", h, "e", "1"));
  for (const std::string& m : messages) commands.push_back(redis_args("PUBLISH", channel, m));
  const auto results = co_await writes_.pipeline(std::move(commands), std::chrono::steady_clock::now() + kAdminDeadline);
  const auto replied = std::chrono::steady_clock::now();
  std::string why;
  const bool ok = all_ok(results, hashes.size() + messages.size(), why);
  co_await acknowledged(std::move(seqs), replied, ok);
  if (!ok) co_return Error{"58000", "Redis did not take the epoch bumps (" + why + ")"};
  counters_.shared_invalidations_sent.fetch_add(messages.size(), std::memory_order_relaxed);
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
