// Cache warming (docs/cache.md, "Warming"): a starting instance, or CACHE WARM, replays the
// hottest cached statements (request/warm_list.h) in the background at warm_rate a second, so
// that the normal fill path stores their answers before clients ask; and the list is saved, to
// warm_file and (with the Redis tier) to Redis, for the next start or another instance.
//
// A replay is run the way a client would run it: one end of a socket pair is adopted by a worker
// as a logged-in ClientSession made from the recorded database, user and settings
// (ClientSession::adopt with `warming`, as the online restart adopts a client), so its cache key
// is the one the recorded clients computed; the warmer writes each Query (or, for an extended
// read, Parse Bind [Describe] Execute Sync with the recorded parameters and formats) on the
// other end and reads until ReadyForQuery, discarding the answer. One run at a time, one statement at a time.
//
// Threading: the coroutines run on one executor (worker 0's loop; its Redis connection lives
// there). start(), warm_now(), save_now() and stop() may be called from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/net/redis_connection.h"
#include "proxy/request/warm_list.h"
#include "proxy/session/services.h"

namespace pgrelay::proxy {

class Worker;

class CacheWarmer {
 public:
  // `workers` adopt the replay sessions (round robin); all outlive the warmer's coroutines
  // (the App stops the workers' loops, and with them these, before destroying anything).
  CacheWarmer(asio::any_io_executor ex, Services& services, std::vector<Worker*> workers);
  ~CacheWarmer();

  // Loads what was saved (warm_file, then Redis) into the list, warms when warm_on_start, and
  // saves every warm_save_interval.
  void start();
  // CACHE WARM [database] ("" = every database): the statements a run now replays, or why not
  // (one is running, warming is off, nothing recorded).
  Result<size_t> warm_now(const std::string& database);
  // Writes warm_file now, and the Redis copy soon (a takeover: the next process loads them).
  void save_now();
  // Shutdown: the run in progress stops (its sessions end), and warm_file is written.
  void stop();

  // The key of `database`'s list in Redis: "<prefix>:warm:<database>".
  static std::string redis_key(const std::string& prefix, const std::string& database);

 private:
  struct Link;
  enum class Outcome { kFilled, kCached, kNotFilled, kFailed, kLoginRefused };
  struct RunCounts {
    uint64_t replayed = 0, filled = 0, cached = 0, failed = 0, skipped = 0;
  };

  awaitable<void> main_loop();
  awaitable<void> run(std::vector<WarmStatement> list, std::string what);
  awaitable<void> replay_all(const std::vector<WarmStatement>& list, RunCounts& counts);
  // A session for `state` on a worker (null: refused; `why` says so).
  awaitable<std::shared_ptr<Link>> open_link(const HandoffState& state, std::string& why);
  awaitable<Outcome> replay(std::shared_ptr<Link> link, const WarmStatement& statement);
  // What a client sends for `s`: a Query, or Parse Bind [Describe] Execute Sync.
  static protocol::Buffer request_of(const WarmStatement& s);
  awaitable<std::vector<WarmStatement>> load_redis();
  awaitable<void> save_redis();
  std::vector<WarmStatement> load_file() const;
  void save_file();
  RedisConnection* redis();

  asio::any_io_executor ex_;
  Services& services_;
  std::vector<Worker*> workers_;
  const conf::CacheSettings settings_;   // [cache] at start
  size_t next_worker_ = 0;
  std::unique_ptr<RedisConnection> redis_;   // on ex_, with the Redis tier
  std::atomic<bool> running_{false};         // a run is in progress
  std::atomic<bool> stopping_{false};
  std::vector<std::weak_ptr<Link>> links_;   // the run's sessions (ex_ only): stop() closes them
  std::mutex file_mu_;                       // save_file() from the loop and from stop()
};

}  // namespace pgrelay::proxy
