// Handling of one client connection: startup, login, and its traffic in every pool mode.
//
// One ClientSession per accepted socket, run as coroutines on the accepting worker's
// io_context; everything it touches (its sockets, its server connection while held) is used
// only from that thread. The client->server direction is forward(), from run(); while a server
// connection is attached, a second coroutine (the pump) carries server->client traffic. A
// logged-in client that has not sent anything yet is parked instead: no coroutine runs for it
// until its socket is readable (park(), resume()).
//   session mode:      attached at login, released at disconnect (after server_reset_query);
//   transaction mode:  attached when the client sends a query, released at ReadyForQuery 'I';
//   statement mode:    the same, and a transaction block is an error.
// When a connection moves between clients, the client's settings go with it (SET/RESET of
// what differs), so each client sees its own client_encoding, TimeZone, application_name...
// and the SETs it made. State that cannot move (SET ROLE, temp tables, LISTEN, ...) pins the
// client to its connection, or is refused (session_state); see SessionTracker.
//
// A TLS client's bytes go through client_ (a ClientTransport) like a plain one's: the TLS
// handshake happens in read_startup(), before the StartupMessage, and nothing else changes.
//
// A request goes: RequestReader (classify, pure) -> decide() -> attach_server() -> route and
// forward; the pump matches the answers to statements (StatementEvents) and gives the connection
// back. docs/architecture.md draws it.
//
// client_session.cc: startup, TLS, the session's life. client_login.cc: login and the greeting.
// client_forward.cc: the client->server direction; client_decide.cc: what is answered here.
// client_pump.cc: the server->client direction and giving the connection back.
// client_session_state.cc: session state (pins, refusals, RESET, DO/CALL settings, sequences).
// client_timers.cc: timeouts. client_park.cc: an idle client parked. client_listen.cc:
// LISTEN/NOTIFY through the database's ListenHub.
// client_info.cc: info() for the console.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/bytes.h"
#include "protocol/error_fields.h"
#include "protocol/framer.h"
#include "protocol/startup.h"
#include "proxy/net/asio.h"
#include "proxy/server/cancel_registry.h"
#include "proxy/request/handoff_state.h"
#include "proxy/request/request_reader.h"
#include "proxy/request/statement_analysis.h"
#include "proxy/request/statement_events.h"
#include "proxy/request/statement_retry.h"
#include "proxy/request/prepared_statements.h"
#include "proxy/pool/pool.h"
#include "proxy/pool/replica_set.h"
#include "proxy/session/client_exchange.h"
#include "proxy/session/lane_receiver.h"
#include "proxy/session/local_answer.h"
#include "proxy/session/replica_route.h"
#include "proxy/session/services.h"
#include "proxy/session/worker_local.h"
#include "proxy/request/session_tracker.h"
#include "proxy/base/lazy.h"
#include "proxy/base/startup_params.h"
#include "proxy/base/stats.h"
#include "proxy/net/tls_context.h"
#include "proxy/net/transport.h"

namespace pgrelay::proxy {

struct ClientInfo;
class CacheObserver;
class Lane;
struct LaneEntry;
struct WarmExtended;

class ClientSession : public std::enable_shared_from_this<ClientSession>, private LaneReceiver {
 public:
  // What the acceptor already knows of a connection it accepted (asking the socket is a
  // getsockname or getpeername on every login).
  struct Accepted {
    bool unix_socket = false;
    // The TCP peer's address as accept() returned it, valid during the constructor; null: ask.
    const sockaddr* peer = nullptr;
    size_t peer_len = 0;
  };
  // `local` is the worker's (same thread, outlives the session). Without `accepted` (a client
  // adopted in an online restart) the socket is asked.
  ClientSession(StreamSocket socket, Services& services, WorkerLocal& local, const Accepted* accepted = nullptr);
  ~ClientSession();

  // Runs the session on its worker's io_context: run(), and after each park() a resume(). When
  // its life is over, the worker's WorkerLocal::session_over is called, on the worker's thread.
  static void launch(std::shared_ptr<ClientSession> session);

  // Ends the session from its own worker thread (shutdown): closes the client socket and
  // cancels server I/O, so run() winds down.
  void terminate();

  // --- client_handoff.cc: online restart (docs/deployment.md, "Upgrading") ---
  // In the process being replaced, on the session's thread: the takeover has begun (a
  // Services::handoff sink is set). A client waiting for its next request is woken to be handed
  // over now; a busy one is handed over when it next is between transactions.
  void offer_handoff();
  // In the new process, on the worker's thread, before launch_adopted(): takes over the client
  // the old process handed over, as a logged-in session with `state`. The error says why not (the
  // caller closes its descriptor without shutting the connection down: the old one serves on).
  // `warming`: not a client but the cache warmer's replay (app/cache_warmer.h): a cancel key of
  // its own, its lookups counted apart (QueryCache::warm_stats), never handed over.
  Result<void> adopt(const HandoffState& state, bool warming = false);
  // Its database, user and settings as warming replays them (no key, credential or statements).
  HandoffState warm_description() const;
  // The extended read that just hit, as cache warming replays it (null: not one to keep).
  std::shared_ptr<const WarmExtended> warm_extended() const;
  static void launch_adopted(std::shared_ptr<ClientSession> session);

  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }
  // For SHOW CLIENTS / SERVERS and KILL (admin_clients.cc); on the session's thread only.
  ClientInfo info() const;

 private:
  // --- client_session.cc ---
  // The life of the connection until it ends (false) or the logged-in client is parked (true).
  // Never throws for anything the client or server does.
  awaitable<bool> run();
  // A parked client's socket became readable, or its wait was cancelled (`ec`: terminate(), the
  // idle timer): forward() again. Same result as run().
  awaitable<bool> resume(error_code ec);
  // Spawns `life` (run() or resume()) on the session's executor; session_over when it ends unparked.
  static void spawn(std::shared_ptr<ClientSession> session, awaitable<bool> life);
  // After forward() or a failed login: the server connection given back, the socket closed.
  awaitable<void> finish();
  // Startup packet (with client_login_timeout), TLS, login. False: the session ends.
  awaitable<bool> start();
  // What TLS told the startup phase that only login needs (start()'s frame holds it).
  struct TlsLogin {
    std::shared_ptr<const ClientTlsContext> ctx;   // the context TLS was started with, if any
    std::string cert_cn;                            // its verified client certificate's CN, if any
  };
  // Startup phase: SSLRequest answered 'S' and TLS started when client TLS is on ('N'
  // otherwise), GSSENCRequest 'N'; a CancelRequest is served and ends the session (nullopt).
  // Errors have already been sent to the client.
  awaitable<std::optional<protocol::StartupMessage>> read_startup(TlsLogin& tls);
  // The TLS handshake after 'S'. False: it failed (logged) and the session must end.
  awaitable<bool> start_tls(std::shared_ptr<const ClientTlsContext> ctx, TlsLogin& tls);
  awaitable<void> serve_cancel(const protocol::CancelRequest& req);
  // --- client_login.cc ---
  // After the StartupMessage: resolve the database and pool, greet the client
  // (AuthenticationOk .. ReadyForQuery). False: already answered with an error.
  awaitable<bool> login(const protocol::StartupMessage& startup, const TlsLogin& tls);
  // After authentication: pool_, mode_, the cache and read routing for `entry` (the client's
  // database entry) and the credential the client proved ("" for none).
  void join_pool(const conf::DatabaseEntry& entry, const std::string& credential);
  // client_params_ when the pool has no greeting for the startup settings yet: another login's
  // answer, or a server connection's own (kept in session mode). False: the login failed.
  awaitable<bool> ask_greeting();
  // NegotiateProtocolVersion (if asked for) .. ReadyForQuery in one buffer; registers the cancel key.
  protocol::Buffer greeting(const protocol::StartupMessage& startup);
  // send_error() of a FATAL built in its own frame: the refusals of login and startup. The
  // views must outlive the co_await (a caller's temporaries do: they end with its full expression).
  awaitable<void> refuse(std::string_view sqlstate, std::string_view message);
  // Why a plain TCP client is refused when client_tls_sslmode requires TLS.
  std::string tls_required_message(const std::string& address) const;
  awaitable<void> send_error(const protocol::ErrorSpec& e);
  awaitable<bool> write_client(protocol::Bytes bytes);
  // write_client() without a coroutine frame when it need not wait: whether it went (false: the
  // client is gone), or nullopt with `bytes` cut to what write_client() still has to write.
  // For the hot paths; `bool ok; if (auto r = write_client_now(b)) ok = *r; else ok = co_await write_client(b);`
  std::optional<bool> write_client_now(protocol::Bytes& bytes);

  // --- client_park.cc ---
  // Once, after login: what forward() needs for the client's whole life.
  void begin_forwarding();
  // Client traffic until the client leaves or the session fails (false: the session ends), or
  // until it is parked (true): read, classify (RequestReader), decide, acquire, route, forward.
  // `resumed`: a parked client's wait has completed with `ec`.
  awaitable<bool> forward(bool resumed = false, error_code ec = {});
  // An idle client waits for its next bytes without a coroutine frame or a buffer: a plain
  // readiness handler on its socket holds the session (parked) and spawns resume(). Today only
  // before its first request (no reader yet), with no server connection attached.
  bool can_park() const;
  void park();

  // --- client_handoff.cc ---
  // Why this client cannot be handed to a new process now ("" when it can): TLS, session
  // pooling, a server connection, pinned state, LISTEN, a request under way.
  const char* handoff_blocker() const;
  std::optional<HandoffState> handoff_state() const;
  // Sends the client to the new process when it can go. True: it has been adopted there, and this
  // session must end without touching the connection (handed_off_).
  awaitable<bool> hand_off();
  void make_reader();   // the RequestReader, with the client's first bytes (or adoption)

  // --- client_forward.cc, and client_decide.cc (what is answered here) ---
  // Whether request `r` of the last scan could be answered here: whole, first after `from`
  // messages already answered, nothing in flight.
  bool local_answer_possible(const Request& r, uint32_t from) const;
  // SQL DEALLOCATE of a protocol-level statement in transaction/statement pooling: the server
  // knows it under pgrelay's shared name, so pgrelay forgets the client's name and answers.
  std::optional<LocalAnswer> deallocate_locally(uint32_t at, const StatementAnalysis& a, char tx_status);
  // Message `at` of request `r` is its one command: a simple Query alone, or an unnamed Parse
  // followed only by Bind, Describe of the portal, one Execute and Sync.
  bool single_command(const Request& r, uint32_t at) const;
  // The decision for one whole request of the last scan, made before any server is taken:
  // a local answer, or nullopt to send it on. No side effects: answer_locally() acts on it.
  std::optional<LocalAnswer> decide(const Request& r);
  // Whether decide() answers request `r` (its transaction status filled in first): checked
  // before answer_locally(), so a request that goes to a server costs no coroutine call for it.
  bool answered_locally(Request& r);
  // Answers the requests at the front of the last scan that decide() answers locally, while
  // nothing is ahead of them; returns the index of the first message still to send.
  // `ended`: a FATAL answer (or a failed write) ended the session.
  awaitable<uint32_t> answer_locally(bool& ended);
  // Routes and writes the last scan's messages from `from` on to the attached server. False:
  // the write failed.
  awaitable<bool> send_to_server(uint32_t from);
  // Tells events_ what a message going to the server now starts or ends; `first_request`: its
  // request is the first in flight (so its transaction status is the server's last one).
  void note_sent(const ClientMessage& m, const protocol::Frame& f, bool first_request, EventClock::time_point now);
  // Takes a server connection for this client, from replica `replica`'s pool (-1: the primary's;
  // a replica that cannot give one, or whose connection fails before the client's settings are
  // on it, falls back to the primary), and makes it carry the client's settings. False: the
  // client has been sent an error and the session must end.
  awaitable<bool> attach_server(int replica = -1);
  // The attached connection broke while the client's request from message `from` waited to go
  // (a query of pgrelay's own on it failed): when it carried nothing of the client's, another
  // is attached. False: the client has been sent an error and the session must end.
  awaitable<bool> replace_lost_server(uint32_t from);
  // Makes the attached server drop stale shared statements and carry the client's settings.
  awaitable<Result<void>> prepare_attached_server();

  // --- client_replicas.cc: reads routed to replicas (docs/replicas.md) ---
  // At login, when read_routing is on for the client in transaction or statement mode.
  void start_read_routing(const conf::DatabaseEntry& server_entry, const std::string& server_user,
                          const asio::any_io_executor& ex);
  // The replica the last scan's requests from message `from` on go to, or -1 for the primary.
  int choose_replica(uint32_t from);
  // Whether every request of the last scan from message `from` on may run on a replica.
  bool replica_eligible(uint32_t from);
  bool statement_on_replica(const StatementAnalysis& a);
  // What a replica (and a lane) may run of `a`, under the cache's catalog `facts` (may be null),
  // memoized per fingerprint in WorkerLocal::replica_verdicts.
  cache::ReplicaJudgement judge_plain_read(const StatementAnalysis& a,
                                           const std::shared_ptr<const cache::FetchedCatalog>& facts);
  bool begins_read_only_by_default(const StatementAnalysis& a) const;
  // A transaction that only ran a plain BEGIN on the primary, and whose next request (from
  // message `from`) is SET TRANSACTION READ ONLY, moves to a replica (ROLLBACK there, BEGIN on
  // the replica). False: the session cannot go on (the client was told).
  awaitable<bool> move_begun_transaction(uint32_t from);
  // The attached replica's connection goes back before what comes next goes to the primary:
  // once nothing is in flight on it (requests_done() or the pump's end wakes this), unless what
  // was in flight opened a transaction, which stays on the replica.
  awaitable<void> leave_replica();
  // The pool the attached server came from.
  Pool& server_pool() { return route_ && route_->attached >= 0 ? *route_->pools[size_t(route_->attached)] : *pool_; }
  // A server of replica `replica` (-1: the primary) is attached, or goes back to server_pool():
  // the outstanding reads that balance the replicas, and the reads each served.
  void replica_attached(int replica);
  void replica_detached();
  // A read that fails on a replica before any of it reached the client runs on the primary:
  // send_to_server() notes what it sent (`alone`: nothing else in flight), the pump asks whether
  // a lost connection (empty `error_body`) or an error may be retried, then hands over to
  // read_again_on_primary(), which attaches the primary, sends the request and starts its pump.
  void note_replica_request(protocol::Bytes sent, bool alone, uint32_t from);
  bool read_again_on_primary_possible(protocol::Bytes error_body) const;
  awaitable<void> read_again_on_primary(std::string why);
  // ReadyForQuery 'I' after a transaction that wrote: the client's reads need the primary's
  // position after it (read-your-writes).
  void note_committed_write();

  // --- client_lane.cc: pipelining (session/lane.h, docs/pipelining.md) ---
  // Whether the last scan, from message `from` on, is one statement a lane may carry.
  bool lane_eligible(uint32_t from);
  // Sends it down the worker's lane for the client's pool and settings and writes its answer.
  // nullopt: no lane could take it and nothing was sent (the ordinary path follows); false: the
  // session must end (the client has been told when it could be).
  awaitable<std::optional<bool>> run_in_lane(uint32_t from);
  // Puts `entry` on `lane`, bringing a connection of the pool when the lane asks for one (or,
  // `must`, when it has none to give). 1: placed; 0: not (never when `must`); -1: the session ends.
  awaitable<int> place_in_lane(Lane& lane, const std::shared_ptr<LaneEntry>& entry, bool must);
  awaitable<bool> take_lane_answer(std::shared_ptr<Lane> lane, std::shared_ptr<LaneEntry> entry);
  // Part or all of an answer from the lane (whole messages): observers, counters, session state,
  // then the client (all but the first `early` bytes, which answer_ready() wrote). False: the
  // client is gone.
  awaitable<bool> deliver_lane_answer(protocol::Buffer& answer, size_t early = 0);
  void answer_ready(LaneEntry& e) override;   // the lane's ReadyForQuery came: written when it may be
  // A CancelRequest or its query_timeout (`timed_out`) for the statement it has in a lane.
  void cancel_in_lane(bool timed_out = false);

  // --- client_cache.cc: the query-result cache (docs/cache.md) ---
  // At login, when the database has the cache enabled: the session's CacheObserver.
  void start_cache(const conf::DatabaseEntry& entry, const conf::DatabaseEntry& server_entry, const std::string& server_user);
  // The search_path names resolve under for this client: its SET, its startup value, or "" (the role's default).
  std::string cache_search_path() const;
  // Tells the observer the client's current name resolution.
  void refresh_cache_key();
  // Request `r` answered from the cache: the stored messages, or null (a miss arms the fill, or,
  // with `join`, finds another session filling the same answer: exchange_->cache_probe.in_flight).
  // Looked up once per request of a scan (answered_locally() and answer_locally() both ask).
  std::shared_ptr<const std::vector<std::byte>> cache_probe(const Request& r, bool join = true);
  // exchange_->cache_probe.in_flight: waits (bounded) for that fill, then looks `r` up again.
  awaitable<void> wait_for_fill(const Request& r);
  // exchange_->cache_probe.shared: asks the Redis tier, then the probe is a hit or a miss.
  awaitable<void> ask_shared_cache();
  // A CALL or DO that may COMMIT inside goes out next: its window opened in Redis first.
  awaitable<void> open_shared_window();
  // The commits the pump saw bumped in the Redis tier (CacheObserver::take_shared_bumps).
  awaitable<void> bump_shared_cache();
  SharedTier* shared_tier();   // the worker's, made on first use; null without a Redis tier
  // Before sending the request whose first message is `from`: the catalog facts its lookup
  // missed, fetched on the attached connection (pump stopped), and the lookup made again so
  // its answer can be stored. False: the connection is lost.
  awaitable<bool> prefetch_cache_catalog(uint32_t from);
  // After a transaction, on the attached connection: the catalog facts the cache's last
  // lookups and writes needed. False: the connection is lost.
  awaitable<bool> fetch_cache_catalog(ServerConnection& server);

  // --- client_listen.cc: LISTEN/NOTIFY in transaction and statement pooling (ListenHub) ---
  // A lone LISTEN or UNLISTEN outside a transaction, while the client is not pinned: answered
  // by pgrelay with the database's ListenHub.
  std::optional<LocalAnswer> listen_locally(uint32_t at, const StatementAnalysis& a, char tx_status);
  // Registers or unregisters the client with the hub; the error to answer with, if any.
  awaitable<std::optional<protocol::ErrorSpec>> apply_listen(const analyzer::Effect& e);
  // An UNLISTEN sent to the server (a pinned client): the hub forgets those channels too.
  void unlisten_sent(const StatementAnalysis& a);
  // A notification from the hub (on this session's executor): written at once when the client
  // is between transactions and nothing else is being written to it, else when it next is.
  void on_notification(const protocol::Buffer& message);
  // The client is between transactions with nothing in flight (PostgreSQL delivers then too).
  bool client_at_rest() const;
  // Notifications wait, the client is at rest, and nothing else is being written to it.
  bool notifications_due() const;
  // Writes the notifications waiting for the client. Call only while no other write to the
  // client is in progress.
  awaitable<bool> write_notifications();
  // Before a write to the client: waits for a notification write in progress to finish.
  awaitable<void> wait_notifications_written();

  // --- client_pump.cc ---
  void start_pump(const asio::any_io_executor& ex);
  bool pump_running() const { return exchange_->pump_done && !exchange_->pump_done->notified(); }
  awaitable<void> pump(std::shared_ptr<Event> done);
  // True when the attached connection can go back to the pool now (transaction/statement
  // mode, nothing in flight, not in a transaction, no partial message either way).
  bool can_release_now() const;
  // Returns the attached connection to the pool between transactions; false (and keeps it)
  // while a cancel request for it is on its way.
  bool give_back_server();
  // Stops the pump and gives the connection back if the client is still between transactions.
  awaitable<void> release_between_transactions();
  // A cancel that held the connection has been delivered: give it back if the client is
  // between transactions. Runs on the session's executor.
  void release_after_cancel();
  // client_idle_timeout / idle_transaction_timeout: armed whenever it is the client's turn
  // (nothing in flight), disarmed when it sends; on expiry timers_->idle_error is set and the client's
  // wait cancelled.
  void arm_idle_timer();
  void disarm_idle_timer();
  // query_timeout: from the first request in flight until none is, then a cancel; and when
  // the server has answered nothing a further query_timeout after the cancel, the connection
  // is shut down as dead (arm_silent_server_timeout). A pipelined statement: counted from when
  // it starts running in its lane (`at`: when the timer is due, after a check), then cancel_in_lane().
  void arm_query_timeout(std::chrono::steady_clock::time_point at = {});
  void arm_silent_server_timeout();
  // `answered` requests in flight on `server` are over (a ReadyForQuery, or Queries the server
  // skips after an extended-protocol error): when none is left, it is the client's turn.
  void requests_done(ServerConnection& server, int answered);
  // Stops the pump (if running) and waits for it.
  awaitable<void> stop_pump();
  // Runs `query` (audit_settings, fetch_cache_catalog on `server`) with own_query set, for at
  // most kOwnQueryPatience: then `server` is closed as broken. False: as `query`, or timed out.
  static constexpr std::chrono::seconds kOwnQueryPatience{5};
  awaitable<bool> run_own_query(ServerConnection& server, awaitable<bool> query);
  // The server rejected a stale shared statement of the request in flight (exchange_.retry):
  // close the connection's shared statements and send the request again. False: the write
  // failed (the client has been told).
  awaitable<bool> resend_stale_request(ServerConnection& server);
  // A retry is over (sent, or the pump stopped): requests held back for it may go.
  void end_retry();
  // The attached connection no longer carries the client's settings (a RESET went back to the
  // server default, not to the client's startup value): SET them again. False: error sent.
  awaitable<bool> resync_server();
  // The SET/RESET statements that make the attached server carry this client's settings.
  std::string settings_sync_sql();
  void observe_queries();   // query_stats: count this session's statements per fingerprint
  // Records on the attached server whose settings it carries now.
  void note_server_carries_settings();
  // --- client_session_state.cc ---
  // Session state in a statement the client sends (a Query, or a Parse creating `statement`):
  // tracks it, pins the client, or (session_state = "reject", inside a transaction) fills
  // `replacement` with a statement the server refuses, whose error the pump turns into ours.
  // True when replaced.
  bool screen_statement(char type, const StatementAnalysis& analysis, const ClientStatementPtr& statement,
                        protocol::Buffer& replacement);
  // Fills `replacement` with a Query or Parse (by `type`) the server refuses, whose error the
  // pump turns into `error`; `parsed`: the client's Parse it stands for, whose name is not made.
  void refuse_at_server(char type, protocol::ErrorSpec error, const ClientStatementPtr& parsed,
                        protocol::Buffer& replacement);
  // A Parse (`body`) of a name the client already has (transaction/statement pooling, where
  // names are pgrelay's): the server answers as PostgreSQL would, 42P05 once the text parses.
  void refuse_duplicate_parse(protocol::Bytes body, const ClientStatementPtr& parsed, protocol::Buffer& replacement);
  // currval()/lastval() that would read sequence state left by an earlier transaction, which
  // may be on another server connection (or another client's): refused at that message with
  // 0A000, never answered with another session's number. Allowed in the transaction (or the
  // Query text) that advanced a sequence first, and on a pinned client's own connection.
  std::optional<LocalAnswer> sequence_refusal(const Request& r) const;
  // The error refusing a statement with pinning effect `pin` (session_state = "reject"), and
  // counting and logging a refusal once it is given.
  protocol::ErrorSpec refusal(const analyzer::Effect& pin) const;
  void note_refusal(analyzer::EffectKind kind);
  // An ErrorResponse from the server that answers a statement screen_statement() refused:
  // pgrelay's own error in its place. False when it is not one.
  bool rejected_error(protocol::Bytes body, protocol::Buffer& replacement);
  // ReadyForQuery: the transaction's session effects take hold; `replacement` gets
  // ParameterStatus messages (before the ReadyForQuery) when a RESET went back to startup values.
  void settle_session_state(char tx_status, protocol::Bytes rfq_frame, protocol::Buffer& replacement);
  // After a transaction that ran a DO block or CALL: asks the server which settings the session
  // has (pg_settings, source 'session') and makes them the client's remembered SETs, so they
  // follow the client and are RESET for the next one. False: the query failed (connection broken).
  awaitable<bool> audit_settings(ServerConnection& server);
  // Gives the attached connection back at the end of the session: ROLLBACK if in a
  // transaction and, in session mode, server_reset_query; closed if not at rest.
  awaitable<void> release_server();

  // What the client and server directions share once the client has sent something
  // (client_exchange.h).
  using Exchange = ClientExchange;

  ClientTransport client_;                             // TCP, or TLS once start_tls() succeeded
  Services& services_;
  std::shared_ptr<const conf::Config> config_;
  const uint64_t id_;
  std::string peer_;                                   // "address:port", or "[local]" on a Unix socket
  std::string user_, database_;
  std::shared_ptr<Pool> pool_;
  conf::PoolMode mode_ = conf::PoolMode::kSession;
  bool unix_socket_ = false;
  bool routing_ = false;                               // statement names rewritten per server (StatementRouter)
  bool screening_ = false;                             // Query/Parse texts are screened for session state
  bool pinned_out_ = false;                            // its server connection is pinned (Pool::pin_out)
  bool server_stale_ = false;                          // the attached server needs resync_server()
  bool terminating_ = false;
  bool awaiting_client_ = false;                       // forward() or park() waits for the client's bytes
  bool handed_off_ = false;                            // the new process has the connection now
  bool handoff_refused_ = false;                       // the new process refused it: this one finishes it
  bool handoff_poked_ = false;                         // offer_handoff() cancelled the client's wait
  bool warming_ = false;                               // a cache warmer's replay session (adopt)
  bool forwarding_ = false;                            // logged in and not yet ending: a pump may be (re)started
  int writes_to_client_ = 0;                           // in progress (pump, local answers, login)
  // Its startup packet's settings, shared with the clients before it on this worker that sent
  // the same (WorkerLocal::startup_settings). Never null.
  std::shared_ptr<const std::vector<Setting>> startup_settings_;
  // ParameterStatus as this client last saw it. Shared (often with other clients of the same
  // pool) and never modified in place: set_client_param() copies it first.
  std::shared_ptr<const ParamMap> client_params_;
  void set_client_param(std::string_view name, std::string_view value);
  // *client_params_, or an empty map before the login has set it. A reference: the map is
  // consulted on every statement, and a copy costs a dozen allocations.
  const ParamMap& reported_params() const;
  std::unique_ptr<ServerConnection> server_;
  Lazy<ClientTimers> timers_;   // made with the first timer armed (client_exchange.h)
  // Where a CancelRequest for this client finds its server connection: made (and bound to key_
  // in the CancelRegistry) with the first server connection it takes; an idle client has none.
  std::shared_ptr<CancelSlot> cancel_slot_;
  CancelSlot& cancel_slot();
  std::optional<protocol::BackendKeyData> key_;
  WorkerLocal& local_;                                 // the worker's analyses and query statistics
  std::unique_ptr<RequestReader> reader_;              // client->server framing and classification (forward())
  // What it leaves on the server beyond transactions: made with its first request.
  Lazy<SessionTracker> session_state_;
  SessionMeter meter_;           // its pool's counters: queries, transactions, bytes, waits
  std::unique_ptr<CacheObserver> cache_observer_;      // the database caches answers (start_cache)
  // Read routing (client_replicas.cc), made at login when it is on for this client.
  std::unique_ptr<ReplicaRoute> route_;
  Lazy<Exchange> exchange_;
};

}  // namespace pgrelay::proxy
