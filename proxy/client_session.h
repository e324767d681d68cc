// Handling of one client connection: startup, finding its pool, and forwarding its traffic.
//
// One ClientSession per accepted socket, run as a coroutine on the accepting worker's
// io_context; everything it touches (its sockets, its server connection while held) is used
// only from that thread. Session pooling: the client holds one server connection from login
// to disconnect; then the connection is reset (server_reset_query) and pooled.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "protocol/bytes.h"
#include "protocol/error_fields.h"
#include "protocol/framer.h"
#include "protocol/startup.h"
#include "proxy/asio.h"
#include "proxy/cancel_registry.h"
#include "proxy/pool.h"
#include "proxy/services.h"

namespace pgrelay::proxy {

class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  ClientSession(tcp::socket socket, Services& services);
  ~ClientSession();

  // The whole life of the connection. Never throws for anything the client or server does.
  awaitable<void> run();

  // Ends the session from its own worker thread (shutdown): closes the client socket and
  // cancels server I/O, so run() winds down.
  void terminate();

  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }

 private:
  // Startup phase: SSLRequest/GSSENCRequest answered 'N'; a CancelRequest is served and
  // ends the session (nullopt). Errors have already been sent to the client.
  awaitable<std::optional<protocol::StartupMessage>> read_startup();
  awaitable<void> serve_cancel(const protocol::CancelRequest& req);
  // Login after the StartupMessage: resolve the database, take a server connection, apply
  // the client's startup parameters, send AuthenticationOk..ReadyForQuery. False: already
  // answered with an error.
  awaitable<bool> login(const protocol::StartupMessage& startup);
  // Session-mode traffic until either side ends.
  awaitable<void> forward();
  awaitable<void> server_to_client(std::shared_ptr<Event> done);
  // Gives the server connection back: reset it if it is at rest, else close it.
  awaitable<void> release_server();

  awaitable<void> send_error(const protocol::ErrorSpec& e);
  awaitable<bool> write_client(protocol::Bytes bytes);

  tcp::socket client_;
  Services& services_;
  std::shared_ptr<const conf::Config> config_;
  const uint64_t id_;
  std::string peer_;
  std::string user_, database_;
  std::shared_ptr<Pool> pool_;
  std::unique_ptr<ServerConnection> server_;
  std::shared_ptr<CancelSlot> cancel_slot_ = std::make_shared<CancelSlot>();
  std::optional<protocol::BackendKeyData> key_;
  protocol::Buffer cbuf_;
  bool counted_ = false;
  bool server_fatal_ = false;    // the server sent a FATAL error (already forwarded)
  bool terminating_ = false;
  bool stop_pump_ = false;       // the server->client direction must not start another read
};

}  // namespace pgrelay::proxy
