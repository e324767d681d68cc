// A worker: one thread, one io_context, one listening socket (SO_REUSEPORT), and its client sessions.
//
// The kernel spreads new connections over the workers' listening sockets; a session lives on
// the worker that accepted it, so a session's I/O never needs a lock. Methods other than the
// constructor and listen() are thread-safe (they post to the worker's thread).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/request/handoff_state.h"
#include "proxy/session/services.h"
#include "proxy/session/worker_local.h"

namespace pgrelay::proxy {

class ClientSession;

class Worker {
 public:
  Worker(int index, Services& services);
  ~Worker();

  // Binds a listening socket to `endpoint` (before start()). Error names the address.
  Result<void> listen(const tcp::endpoint& endpoint);
  // Online restart: accepts on `fd` too, a listening socket (TCP or Unix-domain) the process
  // being replaced passed over (before start()). Takes the descriptor.
  Result<void> adopt_listener(int fd);
  // Its listening sockets' descriptors, TCP first (fixed once started), for the takeover.
  std::vector<int> listener_fds() const;
  // Also listens on the Unix-domain socket `path` (one worker does; before start()). A stale
  // socket file nobody listens on is replaced. Error names the path.
  Result<void> listen_unix(const std::string& path);
  void start();
  void stop_accepting();
  // Online restart: stops accepting but keeps the listening sockets open, so that the new process
  // accepts on them alone; resume_accepting() when the takeover failed.
  void pause_accepting();
  void resume_accepting();
  // Online restart, in the new process: runs a session for the client socket `fd` the old
  // process handed over with `state` (ClientSession::adopt), then `done` on this thread with
  // "" or why it was refused (its descriptor closed, the connection left to the old process).
  // `warming`: the cache warmer's replay session on one end of a socket pair (app/cache_warmer.h).
  void adopt_session(int fd, HandoffState state, std::function<void(std::string refused)> done, bool warming = false);
  // Each live session on this thread: ClientSession::offer_handoff().
  void offer_handoff();
  // Closes every session's sockets (end of the shutdown grace period).
  void terminate_sessions();
  // Stops the thread once sessions are gone, and joins it.
  void stop_and_join();

  int sessions() const { return session_count_.load(); }
  // This worker's event loop, for work that lives on it (the cache's replication listeners).
  asio::any_io_executor executor() { return io_.get_executor(); }

  // Runs `visit` for each live session on this worker's thread, then `lanes` (if given) for its
  // pipelining lanes (if any), then `done`, all there.
  void visit_sessions(std::function<void(ClientSession&)> visit, std::function<void()> done,
                      std::function<void(const LaneSet&)> lanes = {});
  // Runs `answer` on this worker's thread when its event loop gets to it: the watchdog's proof
  // that the loop still turns.
  void ping(std::function<void()> answer);

 private:
  template <class Acceptor>
  awaitable<void> accept_loop(Acceptor& acceptor);
  void spawn_accept_loops();
  // The thread's event loop, polling `busy_poll` after each burst of work (worker.cc).
  void run_loop(std::chrono::microseconds busy_poll);
  // `unix_socket`: accepted on the Unix-domain listener (the acceptor knows; the socket costs a call).
  // `peer`: a TCP client's address as accept() returned it (null: the session asks the socket).
  void start_session(StreamSocket socket, bool unix_socket, const sockaddr* peer = nullptr, size_t peer_len = 0);

  const int index_;
  Services& services_;
  asio::io_context io_{1};
  std::vector<tcp::acceptor> acceptors_;   // one of its own; more adopted in an online restart
  std::optional<asio::local::stream_protocol::acceptor> unix_acceptor_;
  std::thread thread_;
  std::unordered_map<uint64_t, std::weak_ptr<ClientSession>> live_;   // worker thread only
  WorkerLocal local_;                                                   // worker thread only
  std::atomic<int> session_count_{0};
};

}  // namespace pgrelay::proxy
