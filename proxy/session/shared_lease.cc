// The process's lease: bumps waiting for the other instances' acknowledgements.
#include "proxy/session/shared_lease.h"

namespace pgrelay::proxy {

awaitable<bool> SharedLease::wait_acknowledged(uint64_t seq, std::chrono::steady_clock::time_point replied) {
  auto ex = co_await asio::this_coro::executor;
  auto woken = std::make_shared<Event>(ex);   // ours until the wait returns
  {
    std::lock_guard lock(mu_);
    waiters_[seq] = Waiter{.ex = ex, .woken = woken};
  }
  // Forgotten however the wait ends, also when its frame is destroyed unfinished with its
  // worker's event loop at exit: the Event's timer must not outlive that loop in waiters_.
  struct Forget {
    SharedLease& lease;
    uint64_t seq;
    ~Forget() {
      std::lock_guard lock(lease.mu_);
      lease.waiters_.erase(seq);
    }
  } forget{.lease = *this, .seq = seq};
  // Acknowledged already (the echo and the acks can beat the PUBLISH's own reply here).
  bool acknowledged = book_.acknowledged(seq, std::chrono::steady_clock::now());
  if (!acknowledged) {
    const bool notified = co_await woken->wait_until(replied + book_.wait_length());
    acknowledged = notified || book_.acknowledged(seq, std::chrono::steady_clock::now());
  }
  book_.bump_done(seq);
  co_return acknowledged;
}

void SharedLease::wake_acknowledged(std::chrono::steady_clock::time_point now) {
  const std::vector<uint64_t> done = book_.take_acknowledged(now);
  if (done.empty()) return;
  std::lock_guard lock(mu_);
  for (uint64_t seq : done) {
    auto it = waiters_.find(seq);
    if (it == waiters_.end()) continue;   // its waiter finds it acknowledged when it looks
    asio::post(it->second.ex, [woken = it->second.woken] { woken->notify(); });
  }
}

}  // namespace pgrelay::proxy
