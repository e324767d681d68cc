// A worker thread: accepting clients and running their sessions.
#include "proxy/app/worker.h"

#include <sys/socket.h>

#include "proxy/session/client_session.h"
#include "proxy/base/log.h"

namespace pgrelay::proxy {

Worker::Worker(int index, Services& services) : index_(index), services_(services) {}

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
  acceptor_.emplace(std::move(acceptor));
  return {};
}

void Worker::start() {
  asio::co_spawn(io_, accept_loop(), [this](std::exception_ptr e) {
    log_exception(e, "worker " + std::to_string(index_) + ": accept loop failed");
  });
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
}

awaitable<void> Worker::accept_loop() {
  while (acceptor_ && acceptor_->is_open()) {
    error_code ec;
    tcp::socket socket = co_await acceptor_->async_accept(ec_awaitable(ec));
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) break;
    if (ec) {
      // Out of file descriptors and the like: say so, back off, keep serving.
      log_error("worker ", index_, ": accept failed: ", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(ec_awaitable(ec));
      continue;
    }
    services_.stats.clients_accepted.fetch_add(1, std::memory_order_relaxed);
    auto session = std::make_shared<ClientSession>(std::move(socket), services_, analyses_);
    uint64_t id = session->id();
    live_.emplace(id, session);
    session_count_.fetch_add(1);
    // The handler owns the session until run() has finished.
    asio::co_spawn(io_, session->run(), [this, id, session](std::exception_ptr e) {
      log_exception(e, "client " + std::to_string(id) + ": session ended by an unexpected error");
      live_.erase(id);
      session_count_.fetch_sub(1);
    });
  }
}

void Worker::stop_accepting() {
  asio::post(io_, [this] {
    error_code ec;
    if (acceptor_) acceptor_->close(ec);
  });
}

void Worker::terminate_sessions() {
  asio::post(io_, [this] {
    for (auto& [id, weak] : live_)
      if (auto s = weak.lock()) s->terminate();
  });
}

void Worker::visit_sessions(std::function<void(ClientSession&)> visit, std::function<void()> done) {
  asio::post(io_, [this, visit = std::move(visit), done = std::move(done)] {
    for (auto& [id, weak] : live_)
      if (auto s = weak.lock()) visit(*s);
    done();
  });
}

void Worker::stop_and_join() {
  if (!thread_.joinable()) return;
  io_.stop();
  thread_.join();
}

}  // namespace pgrelay::proxy
