// Pipelining (docs/pipelining.md): lone autocommit reads of many clients carried on a few shared
// server connections, each connection's queries written back to back without waiting for the
// answers in between. A read is a simple Query, or an extended-protocol request (Parse of the
// unnamed statement, Bind, Describe, Execute, Sync) of one statement; its prepared statements
// are routed for the connection it lands on (StatementRouter), as on the ordinary path.
//
// A lane belongs to one worker and one (pool, client settings) pair: every connection in it
// carries exactly those settings (the first client made it so with attach_server() and gave it
// to the lane), so any client with the same settings may put its statement on it. Each
// connection keeps a FIFO of the entries written to it; the reader splits the server's answers
// at each ReadyForQuery and gives each entry its own, whole messages only. Only statements that
// may run twice go here (ClientSession::lane_eligible: a plain read, no session effects, outside
// a transaction), because an entry that received nothing when its connection failed, or that a
// cancel meant for another entry hit, is sent again elsewhere (LaneEntry::kRetry).
//
// A connection takes no new entry once `depth` are queued on it or its head has been running longer
// than `max_wait` (a slow statement is not queued behind). With none to join, the entry waits in
// the lane's own FIFO (`waiting_`) for whichever connection answers first, as clients wait for a
// pool: a backend the kernel sets aside then delays only the few statements on it, not a deep
// queue. The lane grows (a client brings a connection from the pool, up to `connections`) when it
// has none, when none will take entries soon, or, while the lane is shallow (LaneGrowth: not
// saturated), when its FIFO lags (its first has waited max_wait / 4) or an entry finds every
// connection stalled; it gives a connection back after a sweep period without such lag, and each
// period while it is deep. Entries pack onto the first connection that can take them and has not
// stalled; the others stand by for a stall. An entry waits in the FIFO as
// long as a connection will take entries soon; when none will and none is on its way, it is turned
// away: the first brings a connection when the lane may hold another, the others take the ordinary
// path. A connection goes back to the pool when its queue drains and clients wait for the pool, and
// otherwise after a quiet sweep period (kLinger). A cancelled entry (the client's CancelRequest, or
// its query_timeout) gets a CancelRequest once it runs (at the head, written; one not yet written
// still goes: the connection's statements and expected replies count it); its connection then takes
// no new entries and is closed once drained, so a late cancel can never hit another client's
// statement; what the cancel hit instead is sent again. With `silent_after`, a connection that
// reads nothing that long after a cancel is closed, as the ordinary path closes one that answers
// neither a query nor its cancel within query_timeout.
//
// One thread (the worker's); entries, connections and the lane are shared_ptrs held by the
// coroutines that use them.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "protocol/bytes.h"
#include "proxy/net/asio.h"
#include "proxy/base/stats.h"
#include "proxy/pool/pool.h"
#include "proxy/request/request.h"
#include "proxy/request/session_tracker.h"
#include "proxy/session/client_info.h"
#include "proxy/session/lane_growth.h"
#include "proxy/session/lane_receiver.h"

namespace pgrelay::proxy {

// One client message of a lane entry, as the session read it.
struct LaneMessage {
  char type = 0;
  uint32_t offset = 0, length = 0;   // its body in LaneEntry::wire (its header just before it)
  ClientStatementPtr statement;      // Parse, Bind, Describe 'S', Execute: what it names (request.h)
};

// One client statement in a lane: its request's messages, and its answer as it arrives.
struct LaneEntry {
  enum class State : uint8_t {
    kQueued,     // waiting for its connection's writer
    kWritten,    // on the server, nothing of its answer yet
    kAnswering,  // part of its answer has come
    kDone,       // its ReadyForQuery has come
    kRetry,      // its connection failed (or a stray cancel hit it) before it answered: send it again
    kFailed,     // its connection failed after part of its answer reached the client
  };
  std::vector<LaneMessage> messages;   // a Query, or Parse/Bind/Describe/Execute/Sync
  protocol::Buffer wire;               // the request's messages as the client sent them
  bool shared_statement = false;       // a Bind or Describe of a shared statement (add(): a stale one means: send again)
  State state = State::kQueued;
  protocol::Buffer answer;             // whole backend messages not yet taken by the session
  bool streaming = false;              // the lane asked the session to take the answer in parts
  bool delivered = false;              // the session wrote part of the answer to its client
  bool cancelled = false;              // the client cancelled: the rest of its answer is dropped
  bool stale = false;                  // the server said a shared statement it used is stale
  // Its unnamed Parse failed (or was skipped): the client no longer has that statement.
  std::vector<ClientStatementPtr> failed_parses;
  int attempts = 0;                    // lanes it has been given to
  std::chrono::steady_clock::time_point written{};
  // In the lane's FIFO (Lane::waiting_); its session waits to hear where it went: onto a
  // connection (waiting false), or turned away: to the ordinary path, or (bring) to bring the
  // lane a connection from the pool, its connections gone.
  bool waiting = false;
  bool turned_away = false;
  bool bring = false;
  std::chrono::steady_clock::time_point offered{};   // the lane took it (Lane::offer)
  // It came to the head of its connection, written: the server runs it from about then
  // (query_timeout counts from here, as from the write on an idle connection). Unset until then.
  std::chrono::steady_clock::time_point started{};
  std::shared_ptr<Event> wake;         // set by the session while it waits for news
  LaneReceiver* receiver = nullptr;    // set by the session while it may take the answer at once
  size_t written_early = 0;            // bytes of `answer` the receiver wrote to the client
  std::shared_ptr<Event> drained;      // set by the lane while it waits for the session to take `answer`

  // Something for the session: the end, or (a large answer) a part. Until then nothing of the
  // answer reaches the client, so the statement can still be sent again elsewhere.
  bool news() const {
    return state == State::kDone || state == State::kRetry || state == State::kFailed || (streaming && !answer.empty());
  }
  void notify();
  void add(char type, protocol::Bytes body, ClientStatementPtr statement);
  // As new, keeping the capacity of its buffers when they are small (4 KiB together), for the
  // worker's next pipelined statement (WorkerLocal::spare_lane_entries). False when they are
  // not (a large answer): not worth keeping.
  bool recycle();
};

class Lane : public std::enable_shared_from_this<Lane> {
 public:
  struct Limits {
    int connections = 4;                                   // per lane (per worker and settings)
    int depth = 16;                                        // entries queued on one connection at most
    std::chrono::milliseconds max_wait{10};                // a head running longer takes no new entries
    uint32_t max_message_size = 256u << 20;
    std::chrono::milliseconds silent_after{0};             // query_timeout: see the top (0: never)
  };
  static constexpr std::chrono::milliseconds kLinger{50};  // a drained connection unused this long goes back
  // A lane whose FIFO kept up for a whole sweep period gives back one of its extra connections.
  static constexpr size_t kStreamAt = 64 * 1024;           // an answer this large goes to the client in parts
  static constexpr size_t kHoldAt = 1024 * 1024;           // the reader waits while one holds this much

  // `stats` (outlives the lane) counts its entries, retries and cancels.
  // The settings a client must have to use the lane: its startup settings, its parameter view
  // and its SETs (`sets` may be null), as ClientSession::settings_sync_sql() applies them.
  struct Settings {
    std::shared_ptr<const std::vector<Setting>> startup;
    std::shared_ptr<const ParamMap> params;
    std::shared_ptr<const SessionSets> sets;
    // The same objects (most clients of an application share them), or equal contents.
    bool same_objects(const Settings& o) const {
      return startup == o.startup && params == o.params && sets == o.sets;
    }
    bool same_contents(const Settings& o) const;
  };
  // `schema_generation` (Services'): a connection whose shared statements are older takes no
  // more entries (attach_server drops them before its next use), and a stale statement bumps it.
  Lane(std::shared_ptr<Pool> pool, Settings settings, Limits limits, asio::any_io_executor ex, ProxyStats& stats,
       std::atomic<uint64_t>& schema_generation);
  ~Lane();

  const Pool* pool() const { return pool_.get(); }
  const Settings& settings() const { return settings_; }

  enum class Place { kJoined, kBringConnection, kWaiting, kNotHere };
  // Puts `e` on a connection that can take it now (kJoined), or says the caller should bring a
  // new connection from the pool (one would come without waiting) and adopt() it, or puts it in
  // the lane's FIFO (kWaiting: LaneEntry::waiting until a connection takes it, or turned_away),
  // or says the statement should take the ordinary path (see the top).
  Place offer(const std::shared_ptr<LaneEntry>& e);
  // A connection from the pool that carries the lane's settings, and its first entry.
  void adopt(std::unique_ptr<ServerConnection> server, const std::shared_ptr<LaneEntry>& e);
  // The client cancelled `e`, or its query_timeout did (and it has been answered): see the top.
  void cancel(const std::shared_ptr<LaneEntry>& e);
  // No connection left: the worker may forget the lane.
  bool empty() const { return held_.empty() && waiting_.empty(); }
  // SHOW SERVERS: a row for each connection it holds (taken from the pool, not yet given back),
  // "active", linked to no client (it serves many).
  void describe(std::vector<ServerInfo>& out) const;
  // Shutdown: every connection closed, every entry told to retry (it finds no lane then).
  void close();

 private:
  struct Conn {
    std::unique_ptr<ServerConnection> server;
    std::deque<std::shared_ptr<LaneEntry>> queue;   // written or to be written, in order
    protocol::Buffer pending;                        // queries not yet written
    protocol::Buffer in;                             // bytes read, not yet a whole message
    bool reading = false;     // its reader runs (it gives the connection back when it ends)
    bool writing = false;     // its writer runs
    bool poisoned = false;    // takes no new entries; closed when drained (a cancel was sent)
    bool retiring = false;    // out of the lane: goes back to the pool once drained
    bool dead = false;        // failed: closed
    bool used = false;        // took an entry since the last sweep
    uint64_t taken = 0;       // entries it took
    std::chrono::steady_clock::time_point last_entry{};   // the last entry it took (request_time)
    std::chrono::steady_clock::time_point cancel_sent{};  // the last CancelRequest sent for it
    std::chrono::steady_clock::time_point heard{};        // the last bytes it read
  };
  static constexpr uint64_t kLifetimeCheckEvery = 1024;
  // `e` onto `c`. Written at once when it is alone there (the backend waits for it), else at the
  // end of this turn of the event loop with whatever else joins `c` in it (flush()), or, `now`,
  // by the caller's flush() (refill(): the connection is waiting).
  void push(const std::shared_ptr<Conn>& c, const std::shared_ptr<LaneEntry>& e, bool now = false);
  // The head of `c` is cancelled and on the server: a CancelRequest, and `c` is poisoned.
  void cancel_head(Conn& c);
  bool can_take(const Conn& c, std::chrono::steady_clock::time_point now) const;
  // Busy but healthy: it will take entries again soon (an entry may wait in the FIFO for it).
  bool will_take(const Conn& c, std::chrono::steady_clock::time_point now) const;
  // Its running statement has run LaneGrowth::kStall: whatever joins it waits at least that.
  static bool stalled(const Conn& c, std::chrono::steady_clock::time_point now);
  bool one_will_take(std::chrono::steady_clock::time_point now) const;   // will_take() of any
  // The FIFO's entries onto `c` while it can take them (after an answer, or a new connection).
  void refill(const std::shared_ptr<Conn>& c);
  // Entries in the FIFO that no connection will take (each busy with a slow statement, or gone)
  // while none is on its way (or one has been for max_wait): turned away, to the ordinary path;
  // with room for a connection, the first instead brings one, and the others wait for it.
  void settle_waiting();
  bool statements_stale(const Conn& c) const;
  // The entry's messages, routed for the connection's prepared statements, onto c.pending.
  static void route(Conn& c, const LaneEntry& e);
  // At the end of the event-loop turn that offered entries: what the socket takes now, and a
  // writer for the rest (a full socket, TLS).
  void flush(const std::shared_ptr<Conn>& c);
  // Writes c.pending until none is left; `cancelled`: a head flush() marked written, cancelled
  // on the server once its bytes are all out.
  awaitable<void> writer(std::shared_ptr<Conn> c, std::shared_ptr<LaneEntry> cancelled);
  // The queued entries go out now; the front one among them is running (LaneEntry::started).
  // Returns it when it was cancelled before: the caller cancels it on the server once written.
  std::shared_ptr<LaneEntry> mark_written(Conn& c);
  // After a write: `cancelled` (mark_written's) is cancelled on the server if still at the head.
  void cancel_written(Conn& c, const std::shared_ptr<LaneEntry>& cancelled);
  awaitable<void> reader(std::shared_ptr<Conn> c);
  // Whole messages in c.in go to their entries. False: the stream is broken.
  bool dispatch(Conn& c);
  void fail(Conn& c, const std::string& why);   // the connection is gone: its entries retry or fail
  // Out of the lane (no new entries); the reader gives it back once drained. By value: a
  // reference into conns_ (the sweep's *min_element) would point at the next connection once
  // this one is erased from it.
  void retire(std::shared_ptr<Conn> c);
  // Reader and writer both ended: to the pool (closed unless healthy and at rest).
  void finish(Conn& c);
  void arm_sweep();
  // Connections that read nothing for `silent_after` since a cancel was sent for them: closed.
  void close_silent();

  std::shared_ptr<Pool> pool_;
  Settings settings_;
  Limits limits_;
  asio::any_io_executor ex_;
  std::vector<std::shared_ptr<Conn>> conns_;   // those that may take entries
  std::vector<std::shared_ptr<Conn>> held_;    // every one not yet given back (conns_ and retired ones)
  std::deque<std::shared_ptr<LaneEntry>> waiting_;   // entries no connection could take yet, in order
  std::unique_ptr<asio::steady_timer> sweep_;
  bool sweeping_ = false;
  LaneGrowth growth_;
  // When a client was last sent to bring the lane a connection (adopt() clears it): while one is
  // on its way (for up to max_wait), others wait in the FIFO for it rather than bring more.
  std::chrono::steady_clock::time_point bringing_{};
  bool bringing(std::chrono::steady_clock::time_point now) const {
    return bringing_ != std::chrono::steady_clock::time_point{} && now - bringing_ < limits_.max_wait;
  }
  ProxyStats& stats_;
  std::atomic<uint64_t>& schema_generation_;
};

}  // namespace pgrelay::proxy

namespace pgrelay::proxy {

// A worker's lanes, one per (pool, client settings) in use (WorkerLocal::lanes).
class LaneSet {
 public:
  ~LaneSet() { close_all(); }
  // The lane of `pool` for clients with `settings`: one with the same objects, else one with
  // equal contents, else a new one.
  std::shared_ptr<Lane> get(const std::shared_ptr<Pool>& pool, const Lane::Settings& settings, Lane::Limits limits,
                            const asio::any_io_executor& ex, ProxyStats& stats,
                            std::atomic<uint64_t>& schema_generation);
  void close_all();   // shutdown
  void describe(std::vector<ServerInfo>& out) const;   // SHOW SERVERS: every lane's (Lane::describe)

 private:
  static constexpr size_t kPruneAt = 64;   // past this many, lanes without connections are dropped
  std::vector<std::shared_ptr<Lane>> lanes_;
};

}  // namespace pgrelay::proxy
