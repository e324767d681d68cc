// Leases on the Redis tier's invalidation channel (docs/cache.md, "Leases"): when this instance
// may serve a memory-tier answer without asking Redis, and when a bump it published has been
// heard by every instance that may be serving so.
//
// The channel delivers each subscriber the messages in the order Redis took them. An instance
// renews its lease by publishing a ping to itself: when its own subscriber hears the ping back,
// everything published before the ping has been applied here. From then on, for the serve
// length (the lease length less a margin for clock rates), measured from when the ping was SENT,
// a memory answer this instance's generations call fresh is fresh, provided every bump
// published after the ping was sent is either heard here or held back from its writer's client
// until the ping's lease is over. A bumper makes sure of the second half: its commit waits until
//   - its own subscriber has heard the bump back (so it has heard every ping published before
//     the bump, from a subscription at least one lease length old: it knows every lease
//     that may not include the bump), and every instance whose ping it had heard within one
//     lease length of that has acknowledged the bump (heard and applied it), or has lapsed;
//   - or one lease length has passed since Redis acknowledged the PUBLISH (every lease from a
//     ping sent before the bump reached Redis is over by then).
// An answer is served under the lease only when its fill started after the current
// subscription was confirmed (messages published before it were never heard here), and not on a
// database where a CALL or DO window was heard within the window hold, unless the instance that
// opened it said since that it holds none there any more (the window's end: heard, the lease is
// back on that database at once; missed, the hold lapses as before).
//
// Lease lengths (redis_lease) are meant to be alike across a cluster; an instance's id says its
// own (cache/lease_messages.h), and a peer counts as live, and a bump waits for it, for the longer
// of the two lengths. (A peer with a longer lease that stopped before this subscription began is
// not known here: see docs.)
//
// Only elapsed time on one steady clock per process is compared; no clock agreement between
// instances is needed (a machine suspended or a VM paused stops CLOCK_MONOTONIC: see docs).
//
// Pure: callers pass the time. Thread-safe: the subscriber's methods run on one thread, bumpers
// and readers on any; readers take no lock unless a window hold is in force.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cache/generations.h"

namespace pgrelay::cache {

class LeaseBook {
 public:
  using Clock = std::chrono::steady_clock;
  using Time = Clock::time_point;
  using Duration = Clock::duration;

  explicit LeaseBook(Duration length);
  LeaseBook(const LeaseBook&) = delete;
  LeaseBook& operator=(const LeaseBook&) = delete;

  Duration length() const { return length_; }
  // How long a heard ping serves: the lease length less 1/16 (clock rates of two machines).
  Duration serve_length() const { return length_ - length_ / 16; }

  // ---- The subscriber (one thread at a time) ----
  // SUBSCRIBE's reply came at `confirmed`: messages are heard from before then on.
  void subscribed(Time confirmed);
  // The subscription is gone (or suspect): no lease until a ping of a new one comes back.
  void unsubscribed();
  bool is_subscribed() const;
  // A ping about to be published, sent at `now`: its id, or 0 when not subscribed (send none).
  uint64_t ping_sending(Time now);
  // This instance's ping `id` came back: the lease runs until its send time + serve_length().
  // False when it does not count (a ping of an earlier subscription, or not subscribed).
  bool heard_own_ping(uint64_t id, Time now);
  // When this instance's last ping came back (epoch: none yet on this subscription).
  Time last_own_ping_heard() const;
  // Another instance's ping: it may hold a lease until now + its length (its id's, at least ours).
  void heard_ping(std::string_view instance, Time now);
  // This instance's bump `seq` came back through its own subscription.
  void heard_own_bump(uint64_t seq, Time now);
  // `from` applied this instance's bump `seq`.
  void heard_ack(std::string_view from, uint64_t seq);
  // `instance` opened (`opened`: the window's number from its window_opening()) or renewed
  // (`opened` 0) a CALL or DO window on `database`: nothing of it is served under the lease for
  // `hold` from `now` (then the confirmed path, which sees the windows set), or until that
  // instance's window_ended() says it is over.
  void hold_window(DatabaseId database, std::string_view instance, uint64_t opened, Time now, Duration hold);
  // `instance` holds no window on `database` any more: every one it opened before its number
  // `end` is over. Its hold there is lifted, unless a window it opened at or after `end` was heard
  // (windows of one process go out over several connections: their messages may cross).
  // False when nothing was lifted.
  bool window_ended(DatabaseId database, std::string_view instance, uint64_t end, Time now);
  // Databases held off the lease by windows now.
  size_t windows_held(Time now) const;
  // A bump from a pgrelay without leases was heard: its commits never wait for this instance,
  // so nothing is served under the lease for `hold` from `now` (a rolling upgrade).
  void hold_all(Time now, Duration hold);
  // Bumps whose wait is over since the last call (each reported once): to wake their waiters.
  std::vector<uint64_t> take_acknowledged(Time now);

  // ---- Bumpers (any thread) ----
  // Before a bump's PUBLISH: its sequence number (never 0) to send with it.
  uint64_t bump_starting();
  // This process opens a CALL or DO window on `database`: the number to publish with it (a
  // bump_starting() sequence number: it is acknowledged as one).
  uint64_t window_opening(DatabaseId database);
  // One of this process's windows on `database` closed: when it held no other there, the end
  // number to publish (every window it opened there is older; one opened from now on is not),
  // else 0.
  uint64_t window_closing(DatabaseId database);
  // True once every instance that may serve without it has heard it (see the top).
  bool acknowledged(uint64_t seq, Time now);
  // The longest a bump waits once Redis took it: the lease length, or a known peer's longer one.
  Duration wait_length() const;
  // The waiter is done (acknowledged or timed out): forgotten.
  void bump_done(uint64_t seq);

  // ---- Readers (any thread) ----
  struct Lease {
    Time until{};           // served while now < until
    Time subscribed_at{};   // only answers whose fill started at or after this
  };
  // Read before the memory lookup whose hit it may serve (its generations are read after).
  Lease lease() const;
  bool serves(const Lease& lease, DatabaseId database, Time filled_at, Time now) const;

  // ---- Stats ----
  uint64_t renewals() const { return renewals_.load(std::memory_order_relaxed); }
  size_t live_peers(Time now) const;
  size_t pending_bumps() const;

 private:
  struct Pending {
    bool echoed = false;
    Time subscribed_at{};               // of the subscription that heard it back
    std::vector<std::string> needed;    // peers live when it came back
    std::set<std::string> acked;
    bool reported = false;
  };
  struct Hold {
    Time until{};
    uint64_t opened = 0;   // the latest window number heard from its instance
  };
  using Holds = std::map<std::string, Hold, std::less<>>;   // by instance
  struct Peer {
    Time heard{};        // its last ping heard here
    Duration reach{};    // how long after that it may serve: its lease length, at least ours
  };
  bool done(const Pending& p, Time now) const;   // mu_ held
  Duration longest_reach() const;                // mu_ held: our length, or a known peer's longer one
  void update_holds_until();                     // mu_ held
  bool window_held(DatabaseId database, Time now) const;
  static int64_t ticks(Time t) { return t.time_since_epoch().count(); }
  static Time at(int64_t ticks) { return Time(Duration(ticks)); }

  const Duration length_;
  std::atomic<int64_t> lease_until_{0};
  std::atomic<int64_t> subscribed_at_{0};
  std::atomic<int64_t> holds_until_{0};   // the latest window hold's end: readers lock only before it
  std::atomic<int64_t> all_held_until_{0};   // hold_all()
  std::atomic<uint64_t> renewals_{0};
  std::atomic<uint64_t> next_seq_{1};

  mutable std::mutex mu_;
  bool subscribed_ = false;
  uint64_t next_ping_ = 1;
  uint64_t first_ping_ = 1;                    // of the current subscription
  std::map<uint64_t, Time> pings_;             // sent, not heard back yet
  Time last_own_heard_{};
  std::map<std::string, Peer, std::less<>> peers_;   // by instance
  std::map<uint64_t, Pending> pending_;
  std::map<DatabaseId, Holds> holds_;
  std::map<DatabaseId, int> own_windows_;      // this process's open windows, by database
};

}  // namespace pgrelay::cache
