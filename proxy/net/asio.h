// The Asio pieces proxy/ uses, in one place (never <boost/asio.hpp>: it doubles compile times).
#pragma once

#include <chrono>
#include <memory>
#include <utility>   // boost/asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace pgrelay::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using asio::awaitable;
using tcp = asio::ip::tcp;
// Server sockets are TCP or Unix-domain; one type serves both.
using StreamSocket = asio::generic::stream_protocol::socket;

// `co_await op(..., ec_awaitable(ec))`: error codes instead of exceptions on the data path.
inline auto ec_awaitable(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// A one-shot wake-up for coroutines on one executor (Asio 1.18 has no channels): wait()
// returns when notify() is called or the deadline passes. Not thread-safe: notify() must run
// on the waiter's executor (post to it from elsewhere). The waiter must own the Event until its
// wait returns (a local shared_ptr, never one reached through a member another coroutine may
// reset): the wait resumes inside it even after notify().
class Event {
 public:
  explicit Event(const asio::any_io_executor& ex) : timer_(ex) { timer_.expires_at(asio::steady_timer::time_point::max()); }

  // True when notified, false when the deadline passed first.
  awaitable<bool> wait_until(asio::steady_timer::time_point deadline) {
    if (notified_) co_return true;
    timer_.expires_at(deadline);
    error_code ec;
    co_await timer_.async_wait(ec_awaitable(ec));
    co_return notified_;
  }
  // No deadline: the timer waits as it was made (at max), in this frame alone (no wait_until's).
  awaitable<void> wait() {
    if (notified_) co_return;
    error_code ec;
    co_await timer_.async_wait(ec_awaitable(ec));
  }
  void notify() { notified_ = true; timer_.cancel(); }
  bool notified() const { return notified_; }

 private:
  asio::steady_timer timer_;
  bool notified_ = false;
};

// Runs `on_fire` if still armed when `after` has passed: a timeout for a sequence of
// operations (usually it closes a socket, which fails whatever is pending on it). Disarmed by
// its destructor or disarm(). Single executor: create, fire and destroy on one thread.
class Watchdog {
 public:
  template <class F>
  Watchdog(const asio::any_io_executor& ex, std::chrono::steady_clock::duration after, F on_fire)
      : timer_(ex), state_(std::make_shared<State>()) {
    timer_.expires_after(after);
    timer_.async_wait([state = state_, f = std::move(on_fire)](const error_code& ec) mutable {
      if (ec || !state->armed) return;
      state->fired = true;
      f();
    });
  }
  ~Watchdog() { disarm(); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void disarm() { state_->armed = false; timer_.cancel(); }
  bool fired() const { return state_->fired; }

 private:
  // Shared with the wait's handler, which may run after the Watchdog is gone (one allocation:
  // every login has a Watchdog).
  struct State {
    bool armed = true;
    bool fired = false;
  };
  asio::steady_timer timer_;
  std::shared_ptr<State> state_;
};

}  // namespace pgrelay::proxy
