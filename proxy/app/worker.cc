// A worker thread: accepting clients and running their sessions.
#include "proxy/app/worker.h"

#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <type_traits>

#include "proxy/base/log.h"
#include "proxy/session/client_session.h"
#include "proxy/session/lane.h"

namespace pgrelay::proxy {

namespace {

size_t fingerprint_length(const conf::Config& c) { return c.query_stats ? size_t(c.query_text_length) : 0; }
bool constants(const conf::Config& c) { return c.query_stats && c.n_plus_one_threshold > 0; }

}  // namespace

Worker::Worker(int index, Services& services)
    : index_(index), services_(services),
      local_(fingerprint_length(*services.config.get()), constants(*services.config.get()),
             services.query_stats.shard(size_t(index))) {
  local_.session_over = [this](uint64_t id) {
    live_.erase(id);
    session_count_.fetch_sub(1);
  };
}

Worker::~Worker() { stop_and_join(); }

Result<void> Worker::listen(const tcp::endpoint& endpoint) {
  error_code ec;
  tcp::acceptor acceptor(io_);
  auto where = [&] { return endpoint.address().to_string() + ":" + std::to_string(endpoint.port()); };
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) {
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec = error_code(errno, boost::system::system_category());
  }
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{"", "cannot listen on " + where() + ": " + ec.message()};
  acceptors_.push_back(std::move(acceptor));
  return {};
}

Result<void> Worker::adopt_listener(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return Error{"", std::string("an adopted listening socket: ") + std::strerror(errno)};
  }
  error_code ec;
  if (addr.ss_family == AF_UNIX) {
    using local = asio::local::stream_protocol;
    local::acceptor acceptor(io_);
    acceptor.assign(local(), fd, ec);
    if (!ec) unix_acceptor_.emplace(std::move(acceptor));
  } else {
    tcp::acceptor acceptor(io_);
    acceptor.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (!ec) acceptors_.push_back(std::move(acceptor));
  }
  if (ec) {
    ::close(fd);
    return Error{"", "an adopted listening socket: " + ec.message()};
  }
  return {};
}

std::vector<int> Worker::listener_fds() const {
  std::vector<int> fds;
  for (const auto& a : acceptors_) fds.push_back(const_cast<tcp::acceptor&>(a).native_handle());
  if (unix_acceptor_) fds.push_back(const_cast<asio::local::stream_protocol::acceptor&>(*unix_acceptor_).native_handle());
  return fds;
}

Result<void> Worker::listen_unix(const std::string& path) {
  using local = asio::local::stream_protocol;
  error_code ec;
  // A socket file left by a pgrelay that was killed: replace it, unless something answers there.
  local::socket probe(io_);
  probe.connect(local::endpoint(path), ec);
  if (!ec) return Error{"", "cannot listen on " + path + ": another server is listening there"};
  if (ec != asio::error::connection_refused && ec.value() != ENOENT)
    return Error{"", "cannot listen on " + path + ": " + ec.message()};
  ::unlink(path.c_str());
  local::acceptor acceptor(io_);
  acceptor.open(local(), ec);
  if (!ec) acceptor.bind(local::endpoint(path), ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{"", "cannot listen on " + path + ": " + ec.message()};
  ::chmod(path.c_str(), 0777);   // as PostgreSQL's unix_socket_permissions default: hba decides who gets in
  unix_acceptor_.emplace(std::move(acceptor));
  return {};
}

void Worker::spawn_accept_loops() {
  for (auto& acceptor : acceptors_) {
    asio::co_spawn(io_, accept_loop(acceptor), [this](std::exception_ptr e) {
      log_exception(e, "worker " + std::to_string(index_) + ": accept loop failed");
    });
  }
  if (unix_acceptor_) {
    asio::co_spawn(io_, accept_loop(*unix_acceptor_), [this](std::exception_ptr e) {
      log_exception(e, "worker " + std::to_string(index_) + ": Unix-socket accept loop failed");
    });
  }
}

void Worker::start() {
  spawn_accept_loops();
  if (index_ == 0 && services_.cache && services_.cache->shared()) {
    // One subscriber per process for the Redis tier's invalidation channel.
    local_.shared_channel = std::make_unique<SharedChannel>(io_.get_executor(), *services_.cache->shared(),
                                                            services_.tls.server(), *services_.cache,
                                                            services_.schema_generation);
    local_.shared_channel->start();
  }
  const std::chrono::microseconds busy_poll(services_.config.get()->busy_poll_us);
  thread_ = std::thread([this, busy_poll] { run_loop(busy_poll); });
}

// A statement crosses pgrelay twice (the request, then the answer), and an answer from a backend
// on the same host, or the client's next request, often comes within tens of microseconds. A
// worker that slept in epoll_wait in between pays the kernel's wake-up each time (and, on an idle
// machine, the core's way out of its idle state). So with busy_poll_us set, after a burst of work
// the loop keeps polling (epoll_wait without a timeout) for busy_poll before it sleeps, yielding
// the core between polls so that a backend or a client that wants to run goes first. Off by
// default: it keeps a core busy for one client's trickle of statements (what CPU quotas and
// autoscalers count), and where CPU-bound threads share pgrelay's scheduling group each yield can
// hand one of them a whole time slice: with its clients and a CPU-bound process in its session,
// pgrelay's throughput halved (bench/README, twelfth round). A yield that took that long stops the
// polling for kBackOff, which bounds what an enabled busy_poll_us loses there.
void Worker::run_loop(std::chrono::microseconds busy_poll) {
  auto guard = asio::make_work_guard(io_);
  if (busy_poll.count() == 0) {
    io_.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  constexpr auto kPreempted = std::chrono::microseconds(200);   // far above a yield nobody took
  constexpr auto kBackOff = std::chrono::milliseconds(100);
  Clock::time_point quiet_until{};
  while (!io_.stopped()) {
    if (io_.poll() > 0) continue;
    auto now = Clock::now();
    bool ran = false;
    if (now >= quiet_until) {
      const auto until = now + busy_poll;
      while (!ran && now < until) {
        const auto before = now;
        sched_yield();
        now = Clock::now();
        if (now - before > kPreempted) {
          quiet_until = now + kBackOff;
          break;
        }
        ran = io_.poll() > 0;
      }
    }
    if (!ran) io_.run_one();
  }
}

template <class Acceptor>
awaitable<void> Worker::accept_loop(Acceptor& acceptor) {
  using Protocol = typename Acceptor::protocol_type;
  constexpr int kAcceptBatch = 8;
  {
    error_code ec;   // accept() below returns would_block instead of waiting
    acceptor.non_blocking(true, ec);
  }
  while (acceptor.is_open()) {
    error_code ec;
    // Accepted with the peer's address (accept() fills it in: no getpeername per login), then
    // moved into the protocol-neutral socket the session holds.
    typename Protocol::socket socket(io_);
    typename Protocol::endpoint peer;
    co_await acceptor.async_accept(socket, peer, ec_awaitable(ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) break;
    if (ec) {
      // Out of file descriptors and the like: say so, back off, keep serving.
      log_error("worker ", index_, ": accept failed: ", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(ec_awaitable(ec));
      continue;
    }
    constexpr bool kUnix = !std::is_same_v<Protocol, tcp>;
    // Then whatever else the kernel's queue holds, up to kAcceptBatch more, without waiting: each
    // async_accept completes through the event loop's queue, behind every login in progress, so
    // in a burst of logins one accept a turn fell behind them (10,000 at once: all logged in at
    // 249-291 ms against 314-457; bench/README, twelfth round). Not more than 8: each login holds
    // its buffers until it parks, and the heap keeps the peak; 2,000 clients at once cost 1.45-1.55
    // KiB each with 8, as with one, 1.55-1.77 with 32 and up to 2.06 with 256, and 8 logs 10,000
    // in as fast (thirteenth round). (A moved-from socket is as if new: the next accept reuses it.)
    int more = kAcceptBatch;
    do {
      start_session(StreamSocket(std::move(socket)), kUnix, kUnix ? nullptr : peer.data(), peer.size());
      if (more-- == 0 || !acceptor.is_open()) break;
      acceptor.accept(socket, peer, ec);   // would_block, or an error the next async_accept reports
    } while (!ec);
  }
}

void Worker::start_session(StreamSocket socket, bool unix_socket, const sockaddr* peer, size_t peer_len) {
  services_.stats.clients_accepted.fetch_add(1, std::memory_order_relaxed);
  const ClientSession::Accepted accepted{.unix_socket = unix_socket, .peer = peer, .peer_len = peer_len};
  auto session = std::make_shared<ClientSession>(std::move(socket), services_, local_, &accepted);
  uint64_t id = session->id();
  live_.emplace(id, session);
  session_count_.fetch_add(1);
  ClientSession::launch(std::move(session));
}

void Worker::stop_accepting() {
  asio::post(io_, [this] {
    error_code ec;
    for (auto& acceptor : acceptors_) acceptor.close(ec);
    if (unix_acceptor_) unix_acceptor_->close(ec);
  });
}

void Worker::pause_accepting() {
  asio::post(io_, [this] {
    error_code ec;   // the accept loops end on operation_aborted; the sockets stay open
    for (auto& acceptor : acceptors_) acceptor.cancel(ec);
    if (unix_acceptor_) unix_acceptor_->cancel(ec);
  });
}

void Worker::resume_accepting() {
  asio::post(io_, [this] { spawn_accept_loops(); });
}

void Worker::adopt_session(int fd, HandoffState state, std::function<void(std::string refused)> done, bool warming) {
  asio::post(io_, [this, fd, state = std::move(state), done = std::move(done), warming] {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    error_code ec;
    StreamSocket socket(io_);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      socket.assign(asio::generic::stream_protocol(addr.ss_family, addr.ss_family == AF_UNIX ? 0 : IPPROTO_TCP), fd, ec);
    else
      ec = error_code(errno, boost::system::system_category());
    if (ec) {
      ::close(fd);
      done("its socket: " + ec.message());
      return;
    }
    auto session = std::make_shared<ClientSession>(std::move(socket), services_, local_);
    if (auto adopted = session->adopt(state, warming); !adopted.ok()) {
      // The session closes only this process' descriptor (close(2), no shutdown): the old
      // process still has the connection and serves on.
      done(adopted.error().message);
      return;
    }
    if (!warming) services_.stats.clients_accepted.fetch_add(1, std::memory_order_relaxed);
    live_.emplace(session->id(), session);
    session_count_.fetch_add(1);
    done("");
    ClientSession::launch_adopted(std::move(session));
  });
}

void Worker::offer_handoff() {
  asio::post(io_, [this] {
    for (auto& [id, weak] : live_)
      if (auto s = weak.lock()) s->offer_handoff();
  });
}

void Worker::terminate_sessions() {
  asio::post(io_, [this] {
    for (auto& [id, weak] : live_)
      if (auto s = weak.lock()) s->terminate();
    if (local_.lanes) local_.lanes->close_all();   // pipelined connections go back (closed)
  });
}

void Worker::visit_sessions(std::function<void(ClientSession&)> visit, std::function<void()> done,
                            std::function<void(const LaneSet&)> lanes) {
  asio::post(io_, [this, visit = std::move(visit), done = std::move(done), lanes = std::move(lanes)] {
    for (auto& [id, weak] : live_)
      if (auto s = weak.lock()) visit(*s);
    if (lanes && local_.lanes) lanes(*local_.lanes);
    done();
  });
}

void Worker::ping(std::function<void()> answer) { asio::post(io_, std::move(answer)); }

void Worker::stop_and_join() {
  if (!thread_.joinable()) return;
  io_.stop();
  thread_.join();
}

}  // namespace pgrelay::proxy
