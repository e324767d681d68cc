// The process's lease on the Redis tier's invalidation channel (docs/cache.md, "Leases";
// the rules in cache/lease_book.h): the book every worker reads before serving a memory hit
// unconfirmed, and the waits of bumps for the other instances' acknowledgements.
//
// One per process with the Redis tier (QueryCache owns it). The channel (shared_channel.h, one
// worker) feeds the book and wakes the waiters; bumps (shared_tier.h, any worker, the admin
// console, the replication listener) wait. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "cache/lease_book.h"
#include "proxy/net/asio.h"

namespace pgrelay::proxy {

class SharedLease {
 public:
  // `length` ([cache] redis_lease): how long a ping's return lets an instance serve memory hits
  // unconfirmed, and the longest a commit waits for the other instances' acknowledgements (or a
  // peer's longer lease: LeaseBook::wait_length).
  explicit SharedLease(std::chrono::steady_clock::duration length) : book_(length) {}

  cache::LeaseBook& book() { return book_; }
  const cache::LeaseBook& book() const { return book_; }

  // The bump `seq` (LeaseBook::bump_starting) was published; Redis answered the PUBLISH at
  // `replied`. Returns once every instance that may serve without it has applied it (true), or
  // LeaseBook::wait_length() after `replied` (false). Forgets `seq` either way. On the caller's executor.
  awaitable<bool> wait_acknowledged(uint64_t seq, std::chrono::steady_clock::time_point replied);

  // The channel, after applying what it heard (and now and then: a peer that lapses lets a
  // wait end too): wakes the bumps whose wait is over.
  void wake_acknowledged(std::chrono::steady_clock::time_point now);

 private:
  struct Waiter {
    asio::any_io_executor ex;
    std::shared_ptr<Event> woken;   // notified on `ex` only
  };
  cache::LeaseBook book_;
  std::mutex mu_;
  std::map<uint64_t, Waiter> waiters_;
};

}  // namespace pgrelay::proxy
