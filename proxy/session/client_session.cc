// Handling of one client connection: startup, login, and the end of the session.
#include "proxy/session/client_session.h"
#include "proxy/session/lane.h"
#include "proxy/session/cache_observer.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/session/client_auth.h"
#include "proxy/session/client_credentials.h"
#include "proxy/session/client_info.h"
#include "proxy/base/log.h"
#include "proxy/session/session_util.h"
#include "proxy/session/n_plus_one_observer.h"
#include "proxy/session/query_observer.h"
#include "proxy/session/statement_event_log.h"
#include "proxy/base/startup_params.h"
#include "proxy/net/tcp_options.h"

namespace pgrelay::proxy {
namespace {

constexpr int kMaxNegotiations = 2;   // SSLRequest then GSSENCRequest (or the reverse)

}  // namespace

ClientSession::ClientSession(StreamSocket socket, Services& services, WorkerLocal& local, const Accepted* accepted)
    : client_(std::move(socket)), services_(services), config_(services.config.get()),
      id_(services.next_client_id.fetch_add(1)), startup_settings_(local.shared_settings), local_(local) {
  const int fd = client_.socket().native_handle();
  unix_socket_ = accepted ? accepted->unix_socket : client_.socket().local_endpoint().protocol().family() == AF_UNIX;
  if (unix_socket_) {
    peer_ = "[local]";
  } else {
    set_tcp_nodelay(fd);
    if (const char* refused = set_tcp_keepalive(fd, config_->tcp)) warn_tcp_option_refused(refused, "client");
    auto [address, port] = accepted && accepted->peer ? endpoint_text(accepted->peer, accepted->peer_len) : peer_of(fd);
    peer_ = address.empty() ? "unknown" : address + ":" + std::to_string(port);
  }
  // Non-blocking from the start: forward() reads without waiting, and Asio, finding it set,
  // makes no FIONBIO call of its own at the first operation.
  error_code nb;
  client_.socket().non_blocking(true, nb);
  services_.clients.fetch_add(1);
  if (services_.statement_log) {
    exchange_->event_log = std::make_unique<SessionEventLog>(services_.statement_log, id_);
    exchange_->events.add_observer(exchange_->event_log.get());
  }
}

void ClientSession::observe_queries() {
  if (!config_->query_stats || !services_.slow_queries || exchange_->query_observer) return;
  auto& query_observer = exchange_->query_observer;
  auto& n_plus_one_observer = exchange_->n_plus_one_observer;
  query_observer = std::make_unique<QueryObserver>(local_.query_stats, *services_.slow_queries,
                                                    QueryOrigin{database_, user_, peer_, client_params_}, *config_);
  exchange_->events.add_observer(query_observer.get());
  if (config_->n_plus_one_threshold > 0) {
    n_plus_one_observer = std::make_unique<NPlusOneObserver>(
        services_.n_plus_one, local_.query_stats, QueryOrigin{database_, user_, peer_, client_params_}, *config_);
    exchange_->events.add_observer(n_plus_one_observer.get());
  }
}

ClientSession::~ClientSession() {
  services_.clients.fetch_sub(1);
  if (key_) services_.cancels.unregister(*key_);
  if (const auto& hub = exchange_.peek().listen_hub) hub->unlisten_all(id_);
}

void ClientSession::terminate() {
  terminating_ = true;
  error_code ec;
  client_.close(ec);
  if (server_) server_->socket().cancel(ec);
  // A statement in a lane: dropped there, which wakes the session's wait for it.
  if (exchange_.made() && exchange_->lane_entry) exchange_->lane->cancel(exchange_->lane_entry);
}

std::optional<bool> ClientSession::write_client_now(protocol::Bytes& bytes) {
  if (exchange_.peek().notifying) return std::nullopt;   // after the notification being written
  error_code ec;
  const size_t sent = client_.send_now(asio::buffer(bytes.data(), bytes.size()), ec);   // 0 over TLS
  if (ec) return false;
  bytes = bytes.subspan(sent);
  if (bytes.empty()) return true;
  return std::nullopt;
}

awaitable<bool> ClientSession::write_client(protocol::Bytes bytes) {
  // Coroutines only for what has to wait: a reply that the socket takes whole (nearly all of
  // them) needs neither of these two.
  if (exchange_.peek().notifying) co_await wait_notifications_written();
  if (auto done = write_client_now(bytes)) co_return *done;
  error_code ec;
  ++writes_to_client_;
  co_await client_.async_write(asio::buffer(bytes.data(), bytes.size()), ec);
  --writes_to_client_;
  co_return !ec;
}

awaitable<void> ClientSession::send_error(const protocol::ErrorSpec& e) {
  if (e.severity == "FATAL") log_info("client ", id_, " ", peer_, ": ", e.sqlstate, " ", e.message);
  if (!key_) services_.stats.on_login_refused(e.sqlstate);   // turned away before login completed
  protocol::Buffer out;
  protocol::encode_error_response(e, out);
  auto ex = co_await asio::this_coro::executor;
  // A client that does not read must not hold the session open: give up after a while.
  Watchdog wd(ex, std::chrono::seconds(5), [this] { error_code ec; client_.close(ec); });
  co_await write_client(out);
}

void ClientSession::launch(std::shared_ptr<ClientSession> session) {
  auto life = session->run();
  spawn(std::move(session), std::move(life));
}

void ClientSession::spawn(std::shared_ptr<ClientSession> session, awaitable<bool> life) {
  auto ex = session->client_.get_executor();
  // The handler owns the session until `life` has finished; a parked one is owned by its wait.
  asio::co_spawn(ex, std::move(life), [session = std::move(session)](std::exception_ptr e, bool parked) {
    // (The context string only when there is something to log: two of them per login otherwise.)
    if (e) log_exception(e, "client " + std::to_string(session->id_) + ": session ended by an unexpected error");
    if (e || !parked) {
      if (session->local_.session_over) session->local_.session_over(session->id_);
    }
  });
}

awaitable<bool> ClientSession::run() {
  log_debug("client ", id_, " connected from ", peer_);
  // Startup and login in a coroutine of their own: their frame (the startup packet, the login
  // timer) is gone before the client's long life in forward() begins.
  const bool logged_in = co_await start();
  if (logged_in) {
    begin_forwarding();
    // Most clients wait a while after login: parked at once, an idle one holds no frame at all.
    if (can_park()) {
      park();
      co_return true;
    }
    const bool parked = co_await forward();   // ends with the pump stopped unless parked
    if (parked) co_return true;
  }
  co_await finish();
  co_return false;
}

awaitable<bool> ClientSession::resume(error_code ec) {
  awaiting_client_ = false;
  const bool parked = co_await forward(true, ec);
  if (parked) co_return true;
  co_await finish();
  co_return false;
}

awaitable<void> ClientSession::finish() {
  // Without a server (every client of the shared modes between transactions) release_server()
  // has nothing to wait for; its no-server case is done here, without a coroutine frame.
  if (server_) co_await release_server();
  else if (cancel_slot_) (void)cancel_slot_->try_clear();
  // Handed to a new process: only this process' descriptor closes; the connection lives on.
  if (!handed_off_) client_.shutdown();   // close_notify first over TLS
  error_code ec;
  client_.close(ec);
  if (!handed_off_) log_debug("client ", id_, " ", peer_, " disconnected");
}

awaitable<bool> ClientSession::start() {
  auto ex = co_await asio::this_coro::executor;
  std::optional<protocol::StartupMessage> startup;
  TlsLogin tls;
  {
    // client_login_timeout: a client that connects and says nothing is told why, then closed.
    Watchdog login_timer(ex, config_->client_login_timeout, [this] {
      log_info("client ", id_, " ", peer_, ": client_login_timeout, closing");
      protocol::Buffer out;
      protocol::encode_error_response(
          fatal(sqlstate::kProtocolViolation, "client_login_timeout: no startup packet received in time"), out);
      client_.try_write_now(asio::buffer(out));   // over TLS once its handshake is done
      error_code ec;
      client_.close(ec);
    });
    startup = co_await read_startup(tls);
  }
  if (!startup) co_return false;
  const bool logged_in = co_await login(*startup, tls);
  co_return logged_in;
}

awaitable<std::optional<protocol::StartupMessage>> ClientSession::read_startup(TlsLogin& tls_login) {
  protocol::Buffer packet;
  for (int round = 0;; ++round) {
    error_code ec;
    // Length and code in one read when they come together, as they do: every valid packet has
    // both (8 bytes), an SSLRequest is nothing else, and no read goes past the packet.
    // The first packet was sent before the client was accepted, and a packet's body comes with
    // its head: read at once (a read that completes inside co_await is posted, and costs a turn
    // of the event loop and an epoll_wait). After an SSLRequest's answer the client has a round
    // trip to make, so that read waits at once.
    std::byte head[8];
    size_t have = 0;
    while (have < 4 && !ec) {
      const auto rest = asio::buffer(head + have, sizeof head - have);
      size_t n = 0;
      if (round == 0) n = client_.read_some(rest, ec);
      if (round > 0 || ec == asio::error::would_block) {
        ec = {};
        n = co_await client_.async_read_some(rest, ec);
      }
      have += n;
    }
    if (ec) co_return std::nullopt;   // gone (or login timeout): nothing more to say
    // A Terminate instead of a startup packet: the client changed its mind. PostgreSQL closes
    // such a connection without a word (its length would read as 1.4 GB).
    if (std::equal(head, head + 4, protocol::kTerminateMessage.begin())) co_return std::nullopt;
    auto length = protocol::startup_packet_length(protocol::Bytes(head, 4), config_->max_startup_packet_size);
    if (!length.ok()) {
      co_await refuse(length.error().sqlstate, length.error().message);
      co_return std::nullopt;
    }
    packet.assign(head, head + have);
    packet.resize(*length);
    if (have < *length) {
      const size_t n = client_.read_some(asio::buffer(packet.data() + have, *length - have), ec);
      if (ec == asio::error::would_block) ec = {};
      else if (!ec) have += n;
      if (!ec && have < *length) co_await client_.async_read(asio::buffer(packet.data() + have, *length - have), ec);
    }
    if (ec) co_return std::nullopt;
    auto decoded = protocol::decode_startup_packet(packet);
    if (!decoded.ok()) {
      co_await refuse(decoded.error().sqlstate, decoded.error().message);
      co_return std::nullopt;
    }
    if (std::holds_alternative<protocol::StartupMessage>(*decoded)) {
      co_return std::get<protocol::StartupMessage>(std::move(*decoded));
    }
    if (auto* cancel = std::get_if<protocol::CancelRequest>(&*decoded)) {
      co_await serve_cancel(*cancel);
      co_return std::nullopt;
    }
    // SSLRequest or GSSENCRequest. GSSAPI is not supported; TLS is when client_tls_* say so, and
    // once only (a second SSLRequest inside TLS is answered 'N', as PostgreSQL does).
    if (round >= kMaxNegotiations) {
      co_await refuse(sqlstate::kProtocolViolation, "too many SSL/GSSAPI encryption requests");
      co_return std::nullopt;
    }
    std::shared_ptr<const ClientTlsContext> tls;
    if (std::holds_alternative<protocol::SslRequest>(*decoded) && !client_.is_tls()) tls = services_.tls.client();
    static constexpr std::byte kNo[1] = {protocol::kEncryptionRefused};
    static constexpr std::byte kYes[1] = {protocol::kEncryptionAccepted};
    // (The read above took exactly the request: nothing sent after it in clear can slip into TLS.)
    const protocol::Bytes answer = tls ? protocol::Bytes(kYes) : protocol::Bytes(kNo);
    const bool answered = co_await write_client(answer);
    if (!answered) co_return std::nullopt;
    if (tls) {
      const bool started = co_await start_tls(std::move(tls), tls_login);
      if (!started) co_return std::nullopt;
    }
  }
}

awaitable<bool> ClientSession::start_tls(std::shared_ptr<const ClientTlsContext> tls, TlsLogin& tls_login) {
  ERR_clear_error();
  SSL* ssl = SSL_new(tls->ctx.get());
  if (!ssl || SSL_set_fd(ssl, client_.socket().native_handle()) != 1) {
    log_error("client ", id_, " ", peer_, ": cannot start TLS (SSL_new/SSL_set_fd failed)");
    SSL_free(ssl);
    co_return false;
  }
  SSL_set_accept_state(ssl);
  error_code ec;
  co_await client_.handshake(std::make_unique<TlsStream>(ssl), ec);
  if (ec) {
    // Not TLS at all, an unacceptable version or certificate, or gone: only this client ends.
    if (client_.is_open()) {
      const std::string why = client_.tls()->last_error().empty() ? ec.message() : client_.tls()->last_error();
      log_info("client ", id_, " ", peer_, ": TLS handshake failed: ", why);
    }
    co_return false;
  }
  tls_login.ctx = std::move(tls);
  tls_login.cert_cn = verified_peer_cn(ssl);
  log_debug("client ", id_, " ", peer_, ": ", SSL_get_version(ssl), " ", SSL_get_cipher_name(ssl),
            tls_login.cert_cn.empty() ? std::string() : ", client certificate CN \"" + tls_login.cert_cn + "\"");
  co_return true;
}

awaitable<void> ClientSession::serve_cancel(const protocol::CancelRequest& req) {
  services_.stats.cancel_requests.fetch_add(1, std::memory_order_relaxed);
  auto slot = services_.cancels.find({req.pid, req.secret});
  if (!slot) {
    // Online restart: a client still served by the process this one is taking over from.
    if (CancelForwarder* forward = services_.cancel_forward.load()) {
      forward->forward_cancel({req.pid, req.secret});
      co_return;
    }
  }
  if (slot && slot->cancel_pipelined()) co_return;   // its statement is in a lane: the session cancels it
  auto target = slot ? slot->begin_cancel() : std::nullopt;
  if (!target) {
    log_debug("cancel request from ", peer_, " for an unknown or idle client");
    co_return;
  }
  log_info("client ", id_, " ", peer_, ": forwarding cancel request to ", target->server->describe());
  // (co_await kept out of argument lists: GCC 12 miscompiles some of those.)
  auto ex = co_await asio::this_coro::executor;
  co_await send_cancel_request(ex, *target->server, target->key);
  slot->end_cancel();
}

CancelSlot& ClientSession::cancel_slot() {
  if (cancel_slot_) return *cancel_slot_;
  cancel_slot_ = std::make_shared<CancelSlot>();
  std::weak_ptr<ClientSession> weak = shared_from_this();
  cancel_slot_->set_owner(client_.get_executor(), [weak] {
    if (auto self = weak.lock()) self->release_after_cancel();
  });
  if (key_) services_.cancels.bind(*key_, cancel_slot_);   // else login registers it
  return *cancel_slot_;
}

const ParamMap& ClientSession::reported_params() const {
  static const ParamMap kNone;
  return client_params_ ? *client_params_ : kNone;
}

void ClientSession::set_client_param(std::string_view name, std::string_view value) {
  auto it = client_params_->find(std::string(name));
  if (it != client_params_->end() && it->second == value) return;
  auto copy = std::make_shared<ParamMap>(*client_params_);
  (*copy)[std::string(name)] = std::string(value);
  client_params_ = std::move(copy);
}

}  // namespace pgrelay::proxy
