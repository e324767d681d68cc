// Server-connection limits that span pools: max_db_connections and max_user_connections.
//
// Every pool counts its connections here as well as in itself, so the limits hold across all
// pools and worker threads. A pool refused here is remembered as starved; when any pool gives a
// connection back, the starved ones are handed to the caller to retry their waiting clients.
// When a pool is starved while another pool of the same database or user sits on idle
// connections, one of those is closed to make room (PgBouncer does the same).
//
// Thread-safe; one short mutex. Lock order: a Pool's mutex may be held when calling try_take()
// and give_back(); this class never calls into a Pool while holding its own mutex.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pgrelay::proxy {

class Pool;

class ConnectionLimits {
 public:
  struct Key {
    std::string database;   // as clients name it
    std::string user;       // the server user
  };
  struct Caps {
    int per_database = 0;   // max_db_connections; 0: no limit
    int per_user = 0;       // max_user_connections; 0: no limit
    bool operator==(const Caps&) const = default;
  };
  enum class Refusal { kNone, kDatabase, kUser };

  // Counts one more connection for `key` when both counts are under their caps.
  Refusal try_take(const Key& key, Caps caps);
  // One connection for `key` closed.
  void give_back(const Key& key);

  // `pool` (counted under `key`) was refused: remember it until room is made.
  void starve(const std::shared_ptr<Pool>& pool, const Key& key);
  // Whether a pool other than `self` sharing `key`'s database or user is starved: then an
  // idle connection of `self` is better closed than kept.
  bool rival_starving(const Key& key, const Pool* self) const;
  // The starved pools, forgotten here: each retries its waiting clients (and starves again
  // if still refused). Call with no Pool mutex held.
  std::vector<std::shared_ptr<Pool>> take_starved();

  // Pools opened under these limits, for eviction: the live ones sharing the database or user
  // that refused `pool`.
  void add_pool(const std::shared_ptr<Pool>& pool, const Key& key);
  std::vector<std::shared_ptr<Pool>> rivals(const Key& key, Refusal refusal, const Pool* except);

  int database_count(const std::string& database) const;
  int user_count(const std::string& user) const;

 private:
  struct Member {
    std::weak_ptr<Pool> pool;
    Key key;
  };
  mutable std::mutex mu_;
  std::map<std::string, int> per_database_;
  std::map<std::string, int> per_user_;
  std::vector<Member> starved_;
  std::vector<Member> members_;
};

}  // namespace pgrelay::proxy
