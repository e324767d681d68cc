// The Redis tier's lookups: a hit (or a miss that asks Redis for the answer) is confirmed against
// the shared versions. The asks of one turn of the worker's event loop for one database share
// one pipeline - HMGET of the union of their tables, the windows set, a GET per answer asked -
// sent once all of them had begun, so its reply is as fresh as each one needs: Redis answers
// after every ask started (a write acknowledged before an ask began is in it). Under load this
// makes one round trip serve many hits.
#include <xxhash.h>

#include <algorithm>

#include "cache/shared_keys.h"
#include "proxy/session/query_cache.h"
#include "proxy/session/shared_tier.h"

namespace pgrelay::proxy {

struct SharedTier::Batch {
  explicit Batch(cache::DatabaseId d) : database(d) {}
  const cache::DatabaseId database;
  std::vector<cache::TableId> tables;           // the union asked, each once
  std::vector<std::string> gets;                // answer keys asked
  std::vector<std::shared_ptr<Event>> waiters;
  RedisConnection::Deadline deadline{};         // the first ask's
  // The reply.
  bool ok = false;
  bool window_open = false;
  uint64_t epoch = 0;
  std::vector<uint64_t> generations;            // parallel to `tables`
  std::vector<std::optional<std::vector<std::byte>>> values;   // parallel to `gets`
};

awaitable<SharedTier::Check> SharedTier::check(cache::DatabaseId database, std::span<const cache::TableId> tables,
                                               std::string answer_key) {
  Check out;
  if (!available()) co_return out;
  follow_failover();
  if (!owed_.empty()) {
    const bool paid = co_await pay_owed();
    if (!paid) co_return out;
  }
  counters_.shared_asks.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<Batch>& forming = forming_[database];
  if (!forming) {
    forming = std::make_shared<Batch>(database);
    forming->deadline = deadline();
    asio::co_spawn(ex_, send_batch(forming), asio::detached);
  }
  const std::shared_ptr<Batch> batch = forming;
  for (cache::TableId t : tables) {
    if (std::find(batch->tables.begin(), batch->tables.end(), t) == batch->tables.end()) batch->tables.push_back(t);
  }
  size_t get = 0;
  const bool asks_answer = !answer_key.empty();
  if (asks_answer) {
    get = batch->gets.size();
    batch->gets.push_back(std::move(answer_key));
  }
  auto woken = std::make_shared<Event>(ex_);
  batch->waiters.push_back(woken);
  const bool answered = co_await woken->wait_until(deadline());
  if (!answered || !batch->ok) co_return out;
  out.now = {.database = database, .epoch = batch->epoch, .tables = {}};
  out.now.tables.reserve(tables.size());
  for (cache::TableId t : tables) {
    const size_t at = size_t(std::find(batch->tables.begin(), batch->tables.end(), t) - batch->tables.begin());
    out.now.tables.push_back({t, batch->generations[at]});
  }
  out.window_open = batch->window_open;
  if (asks_answer) out.value = std::move(batch->values[get]);
  out.ok = true;
  co_return out;
}

awaitable<void> SharedTier::send_batch(std::shared_ptr<Batch> batch) {
  // Run after the handlers ready now, so the lookups of this turn join.
  co_await asio::post(ex_, asio::use_awaitable);
  if (auto it = forming_.find(batch->database); it != forming_.end() && it->second == batch) forming_.erase(it);
  const std::string hash = cache::generations_key_name(settings_.prefix, batch->database);
  const std::string windows = cache::windows_key_name(settings_.prefix, batch->database);
  const std::string lapsed = std::to_string(unix_ms_now() - 1000);   // a second of slack for holders' clocks
  std::vector<std::string> fields;
  fields.reserve(batch->tables.size());
  for (cache::TableId t : batch->tables) fields.push_back(cache::table_field(t));
  std::vector<RedisConnection::Args> commands;
  commands.push_back(versions_args(hash, fields));
  commands.push_back(redis_args("ZRANGEBYSCORE", windows, lapsed, "+inf", "LIMIT", "0", "1"));
  for (const std::string& k : batch->gets) commands.push_back(redis_args("GET", k));
  const size_t expected = commands.size();
  const uint64_t connects = redis_.stats().connects;
  counters_.shared_round_trips.fetch_add(1, std::memory_order_relaxed);
  auto results = co_await redis_.pipeline(std::move(commands), batch->deadline);
  std::string why;
  bool ok = all_ok(results, expected, why);
  if (!ok) failed(why);
  if (ok) ok = co_await read_batch(*batch, hash, fields, results[0].reply);
  if (ok && connects_seen_ != 0 && redis_.stats().connects != connects) {
    // This answer came over a new connection: Redis may have restarted from an older snapshot,
    // with versions older than entries in memory were read under. Not trusted; the epochs of
    // the databases this worker knows are bumped first thing next time.
    owed_.insert(known_.begin(), known_.end());
    owed_.insert(batch->database);
    ok = false;
  }
  connects_seen_ = redis_.stats().connects;
  if (ok) {
    known_.insert(batch->database);
    batch->window_open = results[1].reply.type == RedisReply::Type::kArray && !results[1].reply.elements.empty();
    batch->values.resize(batch->gets.size());
    for (size_t i = 0; i < batch->gets.size(); ++i) {
      const RedisReply& r = results[2 + i].reply;
      if (r.type != RedisReply::Type::kString) continue;
      const auto* p = reinterpret_cast<const std::byte*>(r.str.data());
      batch->values[i].emplace(p, p + r.str.size());
    }
    batch->ok = true;
    succeeded();
  }
  for (const auto& w : batch->waiters) w->notify();
}

RedisConnection::Args SharedTier::versions_args(const std::string& hash, const std::vector<std::string>& fields) {
  RedisConnection::Args a{"HMGET", hash, "id", "e"};
  for (const std::string& f : fields) a.push_back(f);
  return a;
}

awaitable<bool> SharedTier::read_batch(Batch& batch, const std::string& hash, const std::vector<std::string>& fields,
                                       const RedisReply& versions) {
  // HMGET hash id e <table>...: the epoch is the hash's id and its counter together, so a hash
  // made again (with a new id) never repeats a version of the one before it.
  auto read = [&](const RedisReply& reply) {
    if (reply.type != RedisReply::Type::kArray || reply.elements.size() != batch.tables.size() + 2) return false;
    const RedisReply& id = reply.elements[0];
    uint64_t e = 0;
    if (id.type != RedisReply::Type::kString || id.str.empty() || !field_value(reply.elements[1], e)) return false;
    batch.epoch = XXH3_64bits_withSeed(id.str.data(), id.str.size(), e);
    batch.generations.assign(batch.tables.size(), 0);
    for (size_t i = 0; i < batch.tables.size(); ++i) {
      if (!field_value(reply.elements[i + 2], batch.generations[i])) return false;
    }
    return true;
  };
  if (read(versions)) co_return true;
  // No id: the hash is new, or Redis lost it. Named now; whoever names it first wins.
  const std::string id = random_hex_id();   // random: a hash made again never repeats the one before
  std::vector<RedisConnection::Args> again;
  again.push_back(redis_args("HSETNX", hash, "id", id));
  again.push_back(versions_args(hash, fields));
  const auto named = co_await redis_.pipeline(std::move(again), batch.deadline);
  std::string why;
  if (!all_ok(named, 2, why)) {
    failed(why);
    co_return false;
  }
  if (read(named[1].reply)) co_return true;
  failed("the versions hash " + hash + " holds something pgrelay did not write");
  co_return false;
}

}  // namespace pgrelay::proxy
