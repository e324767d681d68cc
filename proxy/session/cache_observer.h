// One client session's part in the query-result cache (docs/cache.md): lookups before a server
// is taken, fills from the statement events, and the invalidations its writes owe at commit.
//
// A StatementObserver of the session's StatementEvents, made at login when the client's
// database has the cache enabled. The session calls lookup() at its decision point (a lone
// simple Query outside a transaction), transaction_ended() when a ReadyForQuery 'I' arrives and
// before it is forwarded, and takes the names whose catalog facts are missing (take_wanted())
// to fetch them on its server connection after the transaction. Session thread only.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <utility>
#include <vector>

#include "cache/key.h"
#include "proxy/request/request.h"
#include "proxy/request/statement_events.h"
#include "proxy/session/query_cache.h"

namespace pgrelay::proxy {

class CacheObserver : public StatementObserver {
 public:
  // `rules`: the database's cache rules (null: none).
  // `stats`: the client's database's counters and latencies (QueryCache::database_stats), or null.
  CacheObserver(QueryCache& cache, AccessMemo& memo, CatalogKey catalog, std::chrono::steady_clock::duration ttl,
                std::shared_ptr<const CacheRules> rules = nullptr, CacheDatabaseStats* stats = nullptr);
  ~CacheObserver() override;   // closes a CALL's or DO's window left open
  CacheObserver(const CacheObserver&) = delete;
  CacheObserver& operator=(const CacheObserver&) = delete;

  // The client's name resolution now (its search_path may have changed since login).
  void set_catalog_key(CatalogKey key);
  // The session does not track its SETs (session mode without startup settings): once it
  // changes name resolution, every later write of the session invalidates the whole database.
  void untracked_settings() { untracked_settings_ = true; }
  const CatalogKey& catalog_key() const { return catalog_; }
  CachePolicy& policy() { return policy_; }   // hints, rules, SHOW CACHES' counters

  // What a request's answer looks like: a simple Query's (RowDescription, DataRows,
  // CommandComplete), or an extended Execute's (the same, RowDescription only when it has a
  // Describe of its portal; ParseComplete and BindComplete are not stored).
  struct Shape {
    bool extended = false;
    bool describe = true;
  };
  // A request for `text` outside a transaction, with its key. A hit: the stored messages. A
  // miss of a cacheable read: the fill is armed for the next statement sent with this text and
  // shape, unless (with `join`) another session is filling the same key right now: then
  // `in_flight` is its flight, to wait for and look up again.
  // With the Redis tier (set_shared_tier): neither a hit nor a miss until Redis has been asked
  // (`shared`): the session sends the ask to its SharedTier and gives the answer to
  // shared_answered(), which says hit or miss.
  using SharedAsk = proxy::SharedAsk;
  struct Lookup {
    std::shared_ptr<const std::vector<std::byte>> hit;
    std::shared_ptr<Flight> in_flight;
    std::optional<SharedAsk> shared;
  };
  Lookup lookup(std::string_view text, cache::CacheKey key, Shape shape, bool join);
  // Called with the text, the key's hash and the shape of every hit (cache warming counts them),
  // while the request that hit is still the session's current one.
  using HitCallback = std::function<void(std::string_view text, uint64_t key_hash, bool extended)>;
  void on_hit(HitCallback f) { on_hit_ = std::move(f); }
  // The Redis tier this session's lookups ask and its fills and bumps go to (null: none).
  void set_shared_tier(SharedTier* tier) { shared_ = tier; }
  // What Redis said of the last lookup's SharedAsk: the answer to replay, or null for a miss
  // (its fill stays armed; it is stored only when Redis answered).
  std::shared_ptr<const std::vector<std::byte>> shared_answered(const SharedTier::Check& check);
  // The last lookup's memory candidate is not to be served (its request goes to the server anyway).
  void forget_candidate() { candidate_.reset(); }
  // Bumps owed to Redis by the commits seen since the last call, to await before the client
  // hears of those commits (client_pump.cc).
  struct SharedBump {
    bool whole_database = false;
    bool schema = false;   // and the schema may have changed: the other instances drop their facts
    std::vector<cache::TableId> tables;
  };
  // Whether a statement of `messages` from `from` on is a CALL or DO that may COMMIT inside:
  // with the Redis tier, its window is opened there before it goes out (open_shared_window).
  bool opens_window(std::span<const ClientMessage> messages, uint32_t from);
  // SharedTier::open_window was called for this session's database: closed with the local window.
  void shared_window_opened() { ++shared_windows_; }
  bool owes_shared_bumps() const { return !shared_bumps_.empty(); }
  std::vector<SharedBump> take_shared_bumps() { return std::exchange(shared_bumps_, {}); }
  cache::DatabaseId database() const { return database_; }
  CacheDatabaseStats* stats() const { return stats_; }

  // ReadyForQuery 'I': the transaction's writes are visible to everyone now; bump what they
  // changed. Call before the ReadyForQuery reaches the client.
  void transaction_ended();
  // A COMMIT's CommandComplete ("COMMIT"), before the client sees it: what was sent before the
  // oldest COMMIT still outstanding is visible now (COMMIT AND CHAIN, or a COMMIT inside a
  // multi-statement Query, where the ReadyForQuery 'I' may be a whole transaction later). Limit:
  // a COMMIT that the server ran as a ROLLBACK (its transaction had failed) answers "ROLLBACK",
  // so the next "COMMIT" completes its writes (harmless) and the later ones wait for 'I'.
  void commit_completed();

  // Names the last lookups and writes needed facts for, and clears them.
  bool wants_catalog() const { return !wanted_relations_.empty() || !wanted_routines_.empty(); }
  std::vector<cache::RelationName> take_wanted_relations();
  std::vector<cache::RoutineName> take_wanted_routines();

  void on_start(const StatementStart& s) override;
  void on_message(uint64_t seq, char type, protocol::Bytes body) override;
  void on_response_bytes(uint64_t seq, protocol::Bytes bytes) override;
  void on_end(const StatementEnd& e) override;
  bool wants_messages() const override { return fill_.has_value(); }

 private:
  struct Armed {
    std::string text;
    Shape shape;
    cache::CacheKey key;
    cache::FillStart start;
    std::shared_ptr<QueryCache::Ticket> ticket;   // leading the key's flight: dropped with the fill
    std::chrono::steady_clock::duration ttl{};    // the policy's (cache_policy.h)
    uint64_t fingerprint = 0;
    std::chrono::steady_clock::time_point armed_at{};   // for the fill latency
    uint64_t armed_unix_ms = 0;                          // the same, for the Redis tier's values
    std::string answer_key;                              // its Redis key (with the Redis tier)
    bool shared_read = false;                            // Redis gave the shared versions: storable
  };
  struct Filling {
    uint64_t seq = 0;
    Armed armed;
    std::vector<std::byte> response;
  };

  // The catalog facts for catalog_ now (an empty view when none).
  const std::shared_ptr<const cache::FetchedCatalog>& view();
  Lookup look(std::string_view text, cache::CacheKey key, Shape shape, bool join);   // lookup() without its timing
  void want(const cache::ReadJudgement& j);
  void note_write(AccessMemo::Entry& memo);
  // What a stretch of statements between two commits wrote: tables, or the whole database.
  struct Writes {
    std::vector<cache::Oid> tables;
    bool whole_database = false;
    bool drop_facts = false;   // and the schema may have changed
  };
  void bump(Writes& w);   // and clears it
  void note_hit(std::string_view text, uint64_t key_hash, Shape shape) {
    if (on_hit_) on_hit_(text, key_hash, shape.extended);
  }
  void close_windows();   // the local window and the shared ones

  QueryCache& cache_;
  AccessMemo& memo_;
  CatalogKey catalog_;
  std::shared_ptr<const cache::FetchedCatalog> view_;   // held until the facts change
  uint64_t view_version_ = 0;
  std::chrono::steady_clock::time_point view_checked_{};
  cache::DatabaseId database_;
  std::chrono::steady_clock::duration ttl_;
  CacheDatabaseStats* stats_;
  std::optional<Armed> armed_;     // a miss waiting for its statement to be sent
  SharedTier* shared_ = nullptr;   // the Redis tier, when there is one
  std::optional<cache::Hit> candidate_;   // a memory hit waiting for Redis to confirm it
  std::vector<SharedBump> shared_bumps_;
  std::shared_ptr<QueryCache::Ticket> lead_;   // leading a key's flight while its facts are fetched
  std::optional<Filling> fill_;    // the statement whose answer is being copied
  // This transaction's writes: the tables, or the whole database.
  Writes current_;                    // sent since the last COMMIT (or the last 'I')
  std::deque<Writes> committing_;     // sent before a COMMIT not completed yet, oldest first
  uint64_t window_seq_ = 0;           // the CALL or DO holding its database's window open
  int shared_windows_ = 0;            // SharedTier windows opened for it (closed with it)
  bool resolution_changed_ = false;   // a statement changed search_path or role in this transaction
  bool untracked_settings_ = false;
  bool resolution_changed_ever_ = false;
  std::set<cache::RelationName> wanted_relations_;
  std::set<cache::RoutineName> wanted_routines_;
  CachePolicy policy_;
  HitCallback on_hit_;
};

}  // namespace pgrelay::proxy
