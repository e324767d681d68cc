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
// How much longer than query_wait_timeout a login waits for another login's greeting (the
// other's connection may still have to log in to the server).
constexpr auto kGreetingGrace = std::chrono::seconds(10);

// A login asking a server for its pool's greeting (Pool::greeting_pending): the logins waiting
// for it are woken however this one ends.
struct GreetingAsk {
  Pool* pool = nullptr;
  const std::vector<Setting>* startup = nullptr;
  void done() {
    if (pool) pool->greeting_asked(*startup);
    pool = nullptr;
  }
  GreetingAsk() = default;
  GreetingAsk(const GreetingAsk&) = delete;
  GreetingAsk& operator=(const GreetingAsk&) = delete;
  ~GreetingAsk() { done(); }
};

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
    auto [address, port] = peer_of(fd);
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

awaitable<bool> ClientSession::write_client(protocol::Bytes bytes) {
  co_await wait_notifications_written();
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
    log_exception(e, "client " + std::to_string(session->id_) + ": session ended by an unexpected error");
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
  co_await release_server();
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
    std::byte head[8];
    size_t have = 0;
    while (have < 4 && !ec) {
      const size_t n = co_await client_.async_read_some(asio::buffer(head + have, sizeof head - have), ec);
      have += n;
    }
    if (ec) co_return std::nullopt;   // gone (or login timeout): nothing more to say
    // A Terminate instead of a startup packet: the client changed its mind. PostgreSQL closes
    // such a connection without a word (its length would read as 1.4 GB).
    if (std::equal(head, head + 4, protocol::kTerminateMessage.begin())) co_return std::nullopt;
    auto length = protocol::startup_packet_length(protocol::Bytes(head, 4), config_->max_startup_packet_size);
    if (!length.ok()) {
      co_await send_error(fatal(length.error().sqlstate, length.error().message));
      co_return std::nullopt;
    }
    packet.assign(head, head + have);
    packet.resize(*length);
    if (have < *length) co_await client_.async_read(asio::buffer(packet.data() + have, *length - have), ec);
    if (ec) co_return std::nullopt;
    auto decoded = protocol::decode_startup_packet(packet);
    if (!decoded.ok()) {
      co_await send_error(fatal(decoded.error().sqlstate, decoded.error().message));
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
      co_await send_error(fatal(sqlstate::kProtocolViolation, "too many SSL/GSSAPI encryption requests"));
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

awaitable<bool> ClientSession::login(const protocol::StartupMessage& startup, const TlsLogin& tls) {
  // The client's IP address, from "address:port" ("" on a Unix socket or when unknown).
  const std::string address = unix_socket_ || peer_ == "unknown" ? std::string() : peer_.substr(0, peer_.rfind(':'));
  user_ = *startup.get("user");
  const std::string* db = startup.get("database");
  database_ = (db && !db->empty()) ? *db : user_;

  if (startup.get("replication")) {
    co_await send_error(fatal(sqlstate::kFeatureNotSupported, "replication connections are not supported by pgrelay"));
    co_return false;
  }
  if (config_->client_tls.required() && !client_.is_tls() && !unix_socket_) {
    // As a PostgreSQL with only hostssl lines: refused after the StartupMessage, with why. (A
    // Unix-domain socket never carries TLS, as in PostgreSQL: it is local to the machine.)
    const conf::HbaRequest hba{address, false, false, database_, user_};
    services_.auth.stats().rejected.fetch_add(1);
    co_await send_error(fatal(sqlstate::kInvalidAuthorization,
                              "connection requires TLS (client_tls_sslmode \"" +
                                  std::string(conf::to_string(config_->client_tls.sslmode)) + "\"): rejecting " +
                                  conf::describe_connection(hba)));
    co_return false;
  }
  // The admin console and DISABLE'd databases are settled first (admins get in when full).
  // Who is logging in, for the console's and the pool's authentication alike.
  const ClientAuthRequest auth_request{.client_id = id_,
                                       .peer = peer_,
                                       .user = user_,
                                       .database = database_,
                                       .is_tls = client_.is_tls(),
                                       .is_unix_socket = unix_socket_,
                                       .address = address,
                                       .tls_cert_cn = tls.cert_cn,
                                       .tls_endpoint_hash = tls.ctx ? std::string_view(tls.ctx->endpoint_hash) : ""};
  if (services_.serve_console) {
    const bool handled = co_await services_.serve_console(client_, services_, *config_, auth_request);
    if (handled) co_return false;
  }
  if (services_.clients.load() > config_->max_client_conn) {
    co_await send_error(fatal(sqlstate::kTooManyConnections, "no more connections allowed (max_client_conn)"));
    co_return false;
  }
  const conf::DatabaseEntry* entry = config_->find_database(database_);
  if (!entry) {
    co_await send_error(fatal(sqlstate::kInvalidCatalogName, "no such database: " + database_));
    co_return false;
  }
  auto auth = co_await authenticate_client(client_, services_, *config_, *entry, auth_request);
  if (!auth.ok()) {
    if (!auth.error().sqlstate.empty()) co_await send_error(fatal(auth.error().sqlstate, auth.error().message));
    co_return false;
  }
  auto settings = startup_settings(startup);
  if (!settings.ok()) {
    co_await send_error(fatal(settings.error().sqlstate, settings.error().message));
    co_return false;
  }
  startup_settings_ = local_.share_settings(std::move(*settings));

  protocol::Buffer out;
  // A newer minor protocol version or _pq_ extensions: say what we speak (3.0, none of them).
  protocol::NegotiateProtocolVersion negotiate;
  for (const auto& [name, value] : startup.params)
    if (name.rfind("_pq_.", 0) == 0) negotiate.unrecognized.push_back(name);
  if (startup.minor > 0 || !negotiate.unrecognized.empty()) protocol::encode(negotiate, out);

  const std::string& server_user = entry->user.empty() ? user_ : entry->user;
  const conf::DatabaseEntry server_entry =
      entry_with_forwarded_credential(services_.auth, *entry, user_, auth->credential);
  pool_ = services_.pools.pool_for(*config_, server_entry, database_, server_user);
  mode_ = pool_->settings().mode;
  meter_.bind(pool_->shared_counters());
  start_cache(*entry, server_entry, server_user);
  if (mode_ != conf::PoolMode::kSession && config_->read_routing(*entry, user_)) {
    auto ex = co_await asio::this_coro::executor;
    start_read_routing(server_entry, server_user, ex);
  }

  // The greeting carries the server's parameters as this client will see them. Session mode
  // keeps the connection it takes now; the other modes greet from what the pool remembers
  // (taking a connection only the first time) and apply the client's settings per transaction.
  GreetingAsk asking;
  if (mode_ != conf::PoolMode::kSession) {
    client_params_ = pool_->greeting_for(*startup_settings_);
    if (!client_params_) {
      auto ex = co_await asio::this_coro::executor;
      auto done = std::make_shared<Event>(ex);
      if (pool_->greeting_pending(*startup_settings_, ex, done)) {
        // Another login asks a server for this greeting: wait for its answer (bounded, as its
        // wait for a connection is), then ask ourselves only if it found none.
        co_await done->wait_until(asio::steady_timer::clock_type::now() + config_->query_wait_timeout +
                                  kGreetingGrace);
        client_params_ = pool_->greeting_for(*startup_settings_);
      } else {
        asking.pool = pool_.get();   // (not a temporary assigned: its destructor would end the ask)
        asking.startup = startup_settings_.get();
      }
    }
  }
  if (!client_params_) {
    if (!co_await attach_server()) co_return false;
    client_params_ = std::make_shared<const ParamMap>(server_->parameters());
    // The startup settings were just accepted by a server: later clients with the same ones
    // are greeted without taking a connection.
    if (mode_ != conf::PoolMode::kSession) pool_->remember_greeting(*startup_settings_, *client_params_);
    asking.done();
    if (mode_ != conf::PoolMode::kSession) (void)give_back_server();
  }

  protocol::Authentication ok;
  ok.type = protocol::AuthType::kOk;
  protocol::encode(ok, out);
  if (local_.greeted != client_params_) {
    local_.greeting.clear();
    for (const auto& [name, value] : *client_params_)
      protocol::encode(protocol::ParameterStatus{name, value}, local_.greeting);
    local_.greeted = client_params_;
  }
  out.insert(out.end(), local_.greeting.begin(), local_.greeting.end());
  // Session mode shows the real backend pid (pg_backend_pid(), NOTIFY senders and
  // pg_terminate_backend agree with what the client sees); the secret stays pgrelay's, so
  // cancels still go through pgrelay. Shared modes get a pid of pgrelay's own.
  std::optional<int32_t> pid;
  if (mode_ == conf::PoolMode::kSession && server_) pid = server_->backend_key().pid;
  key_ = services_.cancels.register_client(cancel_slot_, pid);   // no slot yet unless attached
  protocol::encode(*key_, out);
  protocol::encode(protocol::ReadyForQuery{'I'}, out);
  log_debug("client ", id_, " ", peer_, " logged in to ", database_, " as ", user_);
  co_return co_await write_client(out);
}

}  // namespace pgrelay::proxy
