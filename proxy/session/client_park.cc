// Where a logged-in client waits before its first request: parked on a plain readiness handler
// (no coroutine frame, no buffer), resumed into forward() when its socket is readable.
#include <memory>

#include "proxy/session/client_session.h"
#include "proxy/session/cache_observer.h"

namespace pgrelay::proxy {

void ClientSession::begin_forwarding() {
  routing_ = mode_ != conf::PoolMode::kSession && config_->max_prepared_statements > 0;
  // Statement texts are read for session state when connections are shared, and in session
  // mode when a RESET must go back to the client's startup values.
  screening_ = mode_ != conf::PoolMode::kSession || !startup_settings_->empty();
  if (cache_observer_ && !screening_) cache_observer_->untracked_settings();
  forwarding_ = true;
  if (server_) start_pump(client_.get_executor());   // session mode: attached at login
  if (!client_.socket().non_blocking()) {   // set by the constructor; TLS keeps it
    error_code ec;
    client_.socket().non_blocking(true, ec);
  }
}

bool ClientSession::can_park() const {
  // The first wait after login (nothing read yet); not over TLS holding bytes, not with a
  // server connection (its pump), not with half a message header held between reads.
  return !reader_ && !server_ && !terminating_ && !client_.has_buffered();
}

namespace {

// Allocates exactly what it is asked for. Asio gives operations whose handler has no allocator
// of its own a block from a per-thread cache, however much larger the block is than the
// operation: a parked client's wait would hold whatever block a login freed last.
template <class T>
struct ExactAllocator {
  using value_type = T;
  ExactAllocator() = default;
  template <class U>
  ExactAllocator(const ExactAllocator<U>&) {}
  T* allocate(size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, size_t n) { std::allocator<T>().deallocate(p, n); }
  template <class U>
  bool operator==(const ExactAllocator<U>&) const { return true; }
};

}  // namespace

void ClientSession::park() {
  // A plain handler: the session and nothing else.
  struct Parked {
    std::shared_ptr<ClientSession> self;
    using allocator_type = ExactAllocator<void>;
    allocator_type get_allocator() const { return {}; }
    void operator()(const error_code& ec) {
      auto life = self->resume(ec);
      spawn(std::move(self), std::move(life));
    }
  };
  arm_idle_timer();   // the client's turn: its expiry cancels the wait below
  awaiting_client_ = true;
  client_.socket().async_wait(StreamSocket::wait_read, Parked{shared_from_this()});
}

}  // namespace pgrelay::proxy
