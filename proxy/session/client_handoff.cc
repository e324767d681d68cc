// Online restart: an idle client handed to the next pgrelay process, and adopted from the last.
//
// Only what lives in this process crosses (HandoffState): the client's identity, cancel key,
// settings and prepared statements. A client crosses between transactions, with no server
// connection attached and nothing read of its next request (those bytes wait in the kernel for
// the new process), so it never notices. Clients that cannot cross are finished here.
#include <sys/socket.h>

#include "proxy/base/log.h"
#include "proxy/session/client_credentials.h"
#include "proxy/session/client_session.h"

namespace pgrelay::proxy {

const char* ClientSession::handoff_blocker() const {
  if (terminating_ || !forwarding_) return "ending";
  if (warming_) return "a cache-warming session (it ends with its run)";
  if (client_.is_tls()) return "TLS (its state cannot be passed to another process)";
  if (mode_ == conf::PoolMode::kSession) return "session pooling (its server connection holds its session)";
  if (server_ || pinned_out_) return "a server connection attached";
  if (session_state_.peek().pinned()) return "pinned session state";
  if (exchange_.peek().listen_hub) return "LISTEN";
  if (writes_to_client_ > 0 || !exchange_.peek().notifications.empty()) return "a write to the client under way";
  if (client_.has_buffered()) return "bytes read ahead";
  if (reader_ && (reader_->held() > 0 || reader_->request_open() || !reader_->forwarder().framer().at_boundary()))
    return "a request under way";
  if (reader_ && !routing_ && reader_->named_statements() > 0)
    return "prepared statements on a server connection (max_prepared_statements = 0)";
  return "";
}

std::optional<HandoffState> ClientSession::handoff_state() const {
  HandoffState s{.client_id = id_,
                 .user = user_,
                 .database = database_,
                 .key = key_.value_or(protocol::BackendKeyData{}),
                 .startup = *startup_settings_,
                 .reported = reported_params(),
                 .sets = session_state_.peek().sets() ? *session_state_.peek().sets() : SessionSets{},
                 .statements = {},
                 .credential = {}};
  if (reader_) {
    auto statements = reader_->export_statements();
    if (!statements) return std::nullopt;   // one known only by a cut text
    s.statements = std::move(*statements);
  }
  // The identity a pool borrows from its clients (entry_with_forwarded_credential) goes along:
  // the new process has not seen this client log in.
  if (const conf::DatabaseEntry* entry = config_->find_database(database_);
      entry && entry->password.empty() && (entry->user.empty() || entry->user == user_))
    s.credential = services_.auth.credential(server_user_key(*entry, user_));
  return s;
}

void ClientSession::offer_handoff() {
  // Only a wait for the client's next request is cancelled: no other operation is on the socket
  // then (no server, so no pump; no write under way).
  if (!awaiting_client_ || handoff_refused_ || *handoff_blocker() != '\0') return;
  handoff_poked_ = true;
  error_code ec;
  client_.cancel(ec);
}

awaitable<bool> ClientSession::hand_off() {
  HandoffSink* sink = services_.handoff.load();
  if (!sink || *handoff_blocker() != '\0') co_return false;
  auto state = handoff_state();
  if (!state) {
    handoff_refused_ = true;
    log_info("client ", id_, " ", peer_, ": not handed over (a prepared statement's text is too long to pass); ",
             "this process serves it until it leaves");
    co_return false;
  }
  protocol::Buffer bytes;
  encode(*state, bytes);
  auto ex = co_await asio::this_coro::executor;
  auto done = std::make_shared<Event>(ex);
  auto adopted = std::make_shared<bool>(false);
  // No deadline: the sink answers every send (the new process' answer, or the channel's end).
  // Until then this process must not read: the new one may already be serving the client.
  sink->send(client_.socket().native_handle(), std::move(bytes), [ex, done, adopted](bool ok) {
    asio::post(ex, [done, adopted, ok] {
      *adopted = ok;
      done->notify();
    });
  });
  co_await done->wait();
  if (!*adopted) {
    handoff_refused_ = true;
    log_info("client ", id_, " ", peer_, ": the new process did not adopt it; this process serves it until it leaves");
    co_return false;
  }
  handed_off_ = true;
  log_debug("client ", id_, " ", peer_, " handed over to the new process");
  co_return true;
}

void ClientSession::make_reader() {
  RequestReader::Options options;
  options.max_message_size = config_->max_message_size;
  options.server_names = routing_;
  reader_ = std::make_unique<RequestReader>(local_.analyses, options);
  observe_queries();
}

HandoffState ClientSession::warm_description() const {
  return HandoffState{.client_id = 0,
                      .user = user_,
                      .database = database_,
                      .key = {},
                      .startup = *startup_settings_,
                      .reported = reported_params(),
                      .sets = session_state_.peek().sets() ? *session_state_.peek().sets() : SessionSets{},
                      .statements = {},
                      .credential = {}};
}

Result<void> ClientSession::adopt(const HandoffState& state, bool warming) {
  warming_ = warming;
  user_ = state.user;
  database_ = state.database;
  const conf::DatabaseEntry* entry = config_->find_database(database_);
  if (!entry) return Error{"", "no database \"" + database_ + "\" in this configuration"};
  startup_settings_ = local_.share_settings(state.startup);
  const std::string& server_user = entry->user.empty() ? user_ : entry->user;
  const conf::DatabaseEntry server_entry =
      entry_with_forwarded_credential(services_.auth, *entry, user_, state.credential);
  auto pool = services_.pools.pool_for(*config_, server_entry, database_, server_user);
  if (pool->settings().mode == conf::PoolMode::kSession)
    return Error{"", "database \"" + database_ + "\" uses session pooling in this configuration"};
  if (warming) {
    key_ = services_.cancels.register_client(nullptr);   // a key of its own: nobody cancels a warm replay
  } else if (!services_.cancels.adopt(state.key, nullptr)) {
    return Error{"", "its cancel key is taken by another client of this process"};
  } else {
    key_ = state.key;
  }
  pool_ = std::move(pool);
  mode_ = pool_->settings().mode;
  meter_.bind(pool_->shared_counters());
  start_cache(*entry, server_entry, server_user);
  if (config_->read_routing(*entry, user_)) {
    start_read_routing(server_entry, server_user, client_.get_executor());
    // Its last write in the old process is unknown here: taken as just made (read-your-writes).
    if (route_) route_->written_at = route_->set->positions().begun();
  }
  client_params_ = std::make_shared<const ParamMap>(state.reported);
  if (!state.sets.empty()) (void)session_state_->adopt_settings(state.sets, *client_params_);
  begin_forwarding();
  if (!state.statements.empty()) {
    make_reader();
    for (const auto& statement : state.statements) reader_->adopt_statement(statement);
  }
  log_debug("client ", id_, " ", peer_, " adopted from the previous process (its client ", state.client_id, ") in ",
            database_, " as ", user_);
  return {};
}

void ClientSession::launch_adopted(std::shared_ptr<ClientSession> session) {
  // Its next request may already be waiting: park() and forward() both read it at once then.
  if (session->can_park()) {
    session->park();
    return;
  }
  auto life = session->resume(error_code{});
  spawn(std::move(session), std::move(life));
}

}  // namespace pgrelay::proxy
