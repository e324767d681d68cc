// A client's login after its StartupMessage: refusals, authentication, its pool, the greeting.
#include <optional>

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/base/startup_params.h"
#include "proxy/session/client_auth.h"
#include "proxy/session/client_credentials.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {
namespace {

// How much longer than query_wait_timeout a login waits for another login's greeting (the
// other's connection may still have to log in to the server).
constexpr auto kGreetingGrace = std::chrono::seconds(10);

// What a greeting holds besides the ParameterStatus messages: AuthenticationOk (9 bytes),
// BackendKeyData (13), ReadyForQuery (6), and room for a short NegotiateProtocolVersion.
constexpr size_t kGreetingFrame = 128;

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

// A newer minor protocol version or _pq_ extensions: say what we speak (3.0, none of them).
void encode_negotiation(const protocol::StartupMessage& startup, protocol::Buffer& out) {
  protocol::NegotiateProtocolVersion negotiate;
  for (const auto& [name, value] : startup.params)
    if (name.rfind("_pq_.", 0) == 0) negotiate.unrecognized.push_back(name);
  if (startup.minor > 0 || !negotiate.unrecognized.empty()) protocol::encode(negotiate, out);
}

}  // namespace

std::string ClientSession::tls_required_message(const std::string& address) const {
  const conf::HbaRequest hba{address, false, false, database_, user_};
  return "connection requires TLS (client_tls_sslmode \"" + std::string(conf::to_string(config_->client_tls.sslmode)) +
         "\"): rejecting " + conf::describe_connection(hba);
}

awaitable<void> ClientSession::refuse(std::string_view sqlstate, std::string_view message) {
  co_await send_error(fatal(std::string(sqlstate), std::string(message)));
}

// Everything in here that needs no co_await lives in plain functions (authenticate_without_exchange,
// join_pool, ask_greeting only when the pool has no greeting yet): each local of a coroutine that
// lives across a suspension takes a slot of its frame, and a frame over 1 KiB is a malloc that
// makes glibc consolidate its fast bins, for every client.
awaitable<bool> ClientSession::login(const protocol::StartupMessage& startup, const TlsLogin& tls) {
  // The client's IP address, from "address:port" ("" on a Unix socket or when unknown).
  const std::string address = unix_socket_ || peer_ == "unknown" ? std::string() : peer_.substr(0, peer_.rfind(':'));
  user_ = *startup.get("user");
  const std::string* db = startup.get("database");
  database_ = (db && !db->empty()) ? *db : user_;

  if (startup.get("replication")) {
    co_await refuse(sqlstate::kFeatureNotSupported, "replication connections are not supported by pgrelay");
    co_return false;
  }
  if (config_->client_tls.required() && !client_.is_tls() && !unix_socket_) {
    // As a PostgreSQL with only hostssl lines: refused after the StartupMessage, with why. (A
    // Unix-domain socket never carries TLS, as in PostgreSQL: it is local to the machine.)
    services_.auth.stats().rejected.fetch_add(1);
    co_await refuse(sqlstate::kInvalidAuthorization, tls_required_message(address));
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
  // (The console's own test, asked first: most logins are neither, and skip its coroutine.)
  if (services_.serve_console && (config_->is_admin_database(database_) || services_.gate.disabled(database_))) {
    const bool handled = co_await services_.serve_console(client_, services_, *config_, auth_request);
    if (handled) co_return false;
  }
  if (services_.clients.load() > config_->max_client_conn) {
    co_await refuse(sqlstate::kTooManyConnections, "no more connections allowed (max_client_conn)");
    co_return false;
  }
  const conf::DatabaseEntry* entry = config_->find_database(database_);
  if (!entry) {
    co_await refuse(sqlstate::kInvalidCatalogName, "no such database: " + database_);
    co_return false;
  }
  // Trust (and cert, and what the hba rules refuse outright) is settled without a coroutine.
  std::optional<Result<ClientAuthResult>> auth = authenticate_without_exchange(services_, *config_, auth_request);
  if (!auth) {
    auto exchanged = co_await authenticate_client(client_, services_, *config_, *entry, auth_request);
    auth.emplace(std::move(exchanged));
  }
  if (!auth->ok()) {
    if (!auth->error().sqlstate.empty()) co_await refuse(auth->error().sqlstate, auth->error().message);
    co_return false;
  }
  auto settings = startup_settings(startup);
  if (!settings.ok()) {
    co_await refuse(settings.error().sqlstate, settings.error().message);
    co_return false;
  }
  startup_settings_ = local_.share_settings(std::move(*settings));
  join_pool(*entry, (*auth)->credential);

  // The greeting carries the server's parameters as this client will see them. Session mode
  // keeps the connection it takes now; the other modes greet from what the pool remembers
  // (taking a connection only the first time) and apply the client's settings per transaction.
  if (mode_ != conf::PoolMode::kSession) client_params_ = pool_->greeting_for(*startup_settings_);
  if (!client_params_) {
    const bool greeted = co_await ask_greeting();
    if (!greeted) co_return false;
  }

  const protocol::Buffer out = greeting(startup);
  log_debug("client ", id_, " ", peer_, " logged in to ", database_, " as ", user_);
  co_return co_await write_client(out);
}

protocol::Buffer ClientSession::greeting(const protocol::StartupMessage& startup) {
  protocol::Buffer out;
  if (local_.greeted != client_params_) {
    local_.greeting.clear();
    for (const auto& [name, value] : *client_params_)
      protocol::encode(protocol::ParameterStatus{name, value}, local_.greeting);
    local_.greeted = client_params_;
  }
  out.reserve(kGreetingFrame + local_.greeting.size());
  encode_negotiation(startup, out);
  protocol::Authentication ok;
  ok.type = protocol::AuthType::kOk;
  protocol::encode(ok, out);
  out.insert(out.end(), local_.greeting.begin(), local_.greeting.end());
  // Session mode shows the real backend pid (pg_backend_pid(), NOTIFY senders and
  // pg_terminate_backend agree with what the client sees); the secret stays pgrelay's, so
  // cancels still go through pgrelay. Shared modes get a pid of pgrelay's own.
  std::optional<int32_t> pid;
  if (mode_ == conf::PoolMode::kSession && server_) pid = server_->backend_key().pid;
  key_ = services_.cancels.register_client(cancel_slot_, pid);   // no slot yet unless attached
  protocol::encode(*key_, out);
  protocol::encode(protocol::ReadyForQuery{'I'}, out);
  return out;
}

void ClientSession::join_pool(const conf::DatabaseEntry& entry, const std::string& credential) {
  const std::string& server_user = entry.user.empty() ? user_ : entry.user;
  // A copy of the entry only when it carries a credential the client brought or left for it.
  const std::optional<conf::DatabaseEntry> forwarded =
      forwarded_credential_entry(services_.auth, entry, user_, credential);
  const conf::DatabaseEntry& server_entry = forwarded ? *forwarded : entry;
  pool_ = services_.pools.pool_for(*config_, server_entry, database_, server_user);
  mode_ = pool_->settings().mode;
  meter_.bind(pool_->shared_counters());
  start_cache(entry, server_entry, server_user);
  // (The socket's executor is the session's: spawn() runs it there.)
  if (mode_ != conf::PoolMode::kSession && config_->read_routing(entry, user_))
    start_read_routing(server_entry, server_user, client_.get_executor());
}

awaitable<bool> ClientSession::ask_greeting() {
  GreetingAsk asking;
  if (mode_ != conf::PoolMode::kSession) {
    auto ex = co_await asio::this_coro::executor;
    auto done = std::make_shared<Event>(ex);
    if (pool_->greeting_pending(*startup_settings_, ex, done)) {
      // Another login asks a server for this greeting: wait for its answer (bounded, as its
      // wait for a connection is), then ask ourselves only if it found none.
      co_await done->wait_until(asio::steady_timer::clock_type::now() + config_->query_wait_timeout + kGreetingGrace);
      client_params_ = pool_->greeting_for(*startup_settings_);
    } else {
      asking.pool = pool_.get();   // (not a temporary assigned: its destructor would end the ask)
      asking.startup = startup_settings_.get();
    }
  }
  if (client_params_) co_return true;
  const bool attached = co_await attach_server();
  if (!attached) co_return false;
  client_params_ = std::make_shared<const ParamMap>(server_->parameters());
  // The startup settings were just accepted by a server: later clients with the same ones
  // are greeted without taking a connection.
  if (mode_ != conf::PoolMode::kSession) pool_->remember_greeting(*startup_settings_, *client_params_);
  asking.done();
  if (mode_ != conf::PoolMode::kSession) (void)give_back_server();
  co_return true;
}

}  // namespace pgrelay::proxy
