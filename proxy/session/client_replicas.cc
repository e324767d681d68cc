// Reads routed to a database's replicas (docs/replicas.md): which requests may go, to which
// replica, and the client's own writes, which its later reads must see.
#include <optional>

#include "cache/policy.h"
#include "cache/replica_judgement.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/session/cache_observer.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;

}  // namespace

void ClientSession::start_read_routing(const conf::DatabaseEntry& server_entry, const std::string& server_user,
                                       const asio::any_io_executor& ex) {
  auto set = services_.pools.replica_set_for(server_entry, database_);
  if (!set) return;
  route_ = std::make_unique<ReplicaRoute>();
  route_->set = std::move(set);
  route_->pools = services_.pools.replica_pools_for(*config_, server_entry, database_, server_user);
  route_->catalog_max_age = server_entry.cache.default_ttl;
  route_->set->start(ex, pool_, route_->pools);
}

cache::ReplicaJudgement ClientSession::judge_plain_read(const StatementAnalysis& a,
                                                       const std::shared_ptr<const cache::FetchedCatalog>& facts) {
  // Remembered by the statement's shape key (one pass over its bytes, before the statement is
  // sent), else by its fingerprint (a lexing pass, which texts of other shapes share: IN lists of
  // other lengths), also with query_stats off: the libpg_query parse they save costs several
  // times more, and texts with inline constants are each new.
  auto& verdicts = local_.replica_verdicts;
  auto remembered = [&](const std::optional<uint64_t>& key) -> const cache::ReplicaJudgement* {
    if (!key) return nullptr;
    auto it = verdicts.find(*key);
    return it != verdicts.end() && it->second.facts == facts ? &it->second.judgement : nullptr;
  };
  auto remember = [&](const std::optional<uint64_t>& key, const cache::ReplicaJudgement& j) {
    if (!key) return;
    if (verdicts.size() >= WorkerLocal::kMaxReplicaVerdicts) verdicts.clear();
    verdicts[*key] = WorkerLocal::ReplicaVerdict{.facts = facts, .judgement = j};
  };
  const std::optional<uint64_t> shape = a.shape_key();
  if (const auto* j = remembered(shape)) return *j;
  const std::optional<uint64_t> key = a.constant_free_key();
  cache::ReplicaJudgement j;
  if (const auto* known = remembered(key)) {
    j = *known;
  } else {
    j = cache::judge_replica(*local_.accesses.get(a.text).access, facts.get());
    remember(key, j);
  }
  remember(shape, j);
  return j;
}

bool ClientSession::statement_on_replica(const StatementAnalysis& a) {
  if (a.text_truncated || a.effects.any()) return false;
  // A hint decides over the judgement (not over lag or the client's own writes).
  const cache::RouteHint hint = cache::parse_hint(a.text).route;
  if (hint != cache::RouteHint::kNone) return hint == cache::RouteHint::kReplica;
  // The catalog facts the query cache fetched for this client, when the database caches.
  std::shared_ptr<const cache::FetchedCatalog> facts;
  if (cache_observer_) facts = services_.cache->catalog(cache_observer_->catalog_key(), route_->catalog_max_age);
  const cache::ReplicaJudgement j = judge_plain_read(a, facts);
  switch (j.verdict) {
    case cache::ReplicaVerdict::kReplica: return true;
    case cache::ReplicaVerdict::kReadOnlyTransaction:
      // BEGIN ... READ ONLY opens a transaction a replica can run whole; SET TRANSACTION READ
      // ONLY right after a plain BEGIN moves the transaction there (move_begun_transaction).
      if (!a.tx_controls.empty() && a.tx_controls.front().kind == TxControl::Kind::kBegin) return true;
      return !route_->begun.empty() && a.tx_controls.empty();
    case cache::ReplicaVerdict::kPrimary: return begins_read_only_by_default(a);
  }
  return false;
}

bool ClientSession::begins_read_only_by_default(const StatementAnalysis& a) const {
  // A plain BEGIN while the client's default_transaction_read_only is on (SET, or its startup
  // options: the server reports it) opens a read-only transaction; BEGIN READ WRITE does not.
  if (a.statement_count() != 1 || a.tx_controls.size() != 1 || a.tx_controls.front().kind != TxControl::Kind::kBegin)
    return false;
  if (!client_params_) return false;
  const auto it = client_params_->find("default_transaction_read_only");
  if (it == client_params_->end() || it->second != "on") return false;
  std::string lower = a.text;
  for (char& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return lower.find("write") == std::string::npos;
}

bool ClientSession::replica_eligible(uint32_t from) {
  if (reader_->forwarder().has_unscanned_bytes()) return false;   // the rest of a request is still to come
  const auto& messages = reader_->messages();
  const auto& scanned = reader_->forwarder().scanned();
  bool statements = false;
  for (const Request& r : reader_->requests()) {
    if (r.end <= from) continue;
    if (!r.complete) return false;
    for (uint32_t i = std::max(r.first, from); i < r.end; ++i) {
      const char type = scanned[i].frame.type;
      if (type == fe::kFunctionCall) return false;
      if (type != fe::kQuery && type != fe::kExecute) continue;
      const StatementAnalysis* a = messages[i].analysis.get();
      if (!a || !statement_on_replica(*a)) return false;
      statements = true;
    }
  }
  return statements;
}

int ClientSession::choose_replica(uint32_t from) {
  ReplicaSet& set = *route_->set;
  route_->routed = false;
  if (!replica_eligible(from)) return -1;
  route_->routed = true;
  // Read-your-writes: after this client's last write committed, only a replica that has replayed
  // the primary's position sampled after that commit will do; until one is sampled, the primary.
  if (route_->written_at && route_->must_see == 0) {
    const auto position = set.positions().position_after(*route_->written_at);
    if (!position) return -1;
    route_->must_see = *position;
  }
  const auto chosen = set.choose(route_->must_see);
  return chosen ? int(*chosen) : -1;
}

awaitable<void> ClientSession::leave_replica() {
  if (server_->in_flight > 0 && pump_running()) {
    route_->drained = std::make_shared<Event>(client_.get_executor());
    auto drained = route_->drained;
    co_await drained->wait();
    route_->drained.reset();
  }
  if (server_ && can_release_now()) co_await release_between_transactions();
}

void ClientSession::replica_attached(int replica) {
  route_->attached = replica;
  std::atomic<int>& outstanding =
      replica >= 0 ? route_->set->replica(size_t(replica)).outstanding : route_->set->primary_outstanding();
  std::atomic<uint64_t>& reads = replica >= 0 ? route_->set->replica(size_t(replica)).reads : route_->set->primary_reads();
  // Only reads count on the primary (writes are not balanced).
  route_->counted = replica >= 0 || route_->routed;
  if (!route_->counted) return;
  outstanding.fetch_add(1, std::memory_order_relaxed);
  reads.fetch_add(1, std::memory_order_relaxed);
}

void ClientSession::replica_detached() {
  if (!route_) return;
  if (route_->counted) {
    std::atomic<int>& outstanding = route_->attached >= 0 ? route_->set->replica(size_t(route_->attached)).outstanding
                                                          : route_->set->primary_outstanding();
    outstanding.fetch_sub(1, std::memory_order_relaxed);
  }
  route_->attached = -1;
  route_->counted = false;
}

void ClientSession::note_replica_request(protocol::Bytes sent, bool alone, uint32_t from) {
  route_->resend.clear();
  route_->begun.clear();
  if (route_->attached < 0 && alone && server_ && server_->tx_status == 'I') {
    // A lone plain BEGIN on the primary: a SET TRANSACTION READ ONLY next may take the
    // transaction to a replica.
    const auto& messages = reader_->messages();
    const auto& scanned = reader_->forwarder().scanned();
    for (uint32_t i = from; i < messages.size(); ++i) {
      const StatementAnalysis* a = messages[i].analysis.get();
      if (scanned[i].frame.type == fe::kQuery && a && a->statement_count() == 1 && a->tx_controls.size() == 1 &&
          a->tx_controls.front().kind == TxControl::Kind::kBegin && !a->text_truncated)
        route_->begun = a->text;
    }
  }
  // One whole simple Query, alone on a replica's connection: its bytes are the same on any server.
  if (route_->attached < 0 || !alone || sent.size() < 5 || char(sent[0]) != fe::kQuery) return;
  const uint32_t length = (uint32_t(sent[1]) << 24) | (uint32_t(sent[2]) << 16) | (uint32_t(sent[3]) << 8) | uint32_t(sent[4]);
  if (size_t(length) + 1 == sent.size()) route_->resend.assign(sent.begin(), sent.end());
}

bool ClientSession::read_again_on_primary_possible(protocol::Bytes error_body) const {
  // error_body: an ErrorResponse's or NoticeResponse's body; empty: the connection was lost.
  if (!route_ || route_->attached < 0 || route_->resend.empty() || !server_ || server_->in_flight != 1) return false;
  if (error_body.empty()) return true;   // the replica's connection was lost
  // A standby cancels a read whose snapshot conflicts with the WAL it replays (40001, "canceling
  // statement due to conflict with recovery"): the primary has no such conflict. A server shutting
  // down (57P01, a FATAL error or, in an immediate shutdown, a warning before it closes) or one
  // whose sibling crashed (57P02) will not answer.
  auto e = protocol::decode_error_notice(error_body);
  if (!e.ok()) return false;
  if (e->sqlstate == "57P01" || e->sqlstate == "57P02") return true;
  return e->sqlstate == "40001" && e->message.find("conflict with recovery") != std::string_view::npos;
}

awaitable<void> ClientSession::read_again_on_primary(std::string why) {
  // What the client sends meanwhile waits (forward() and send_to_server() wait on `retrying`).
  auto guard = std::make_shared<Event>(client_.get_executor());
  exchange_->retrying = guard;
  protocol::Buffer request = std::move(route_->resend);
  route_->resend.clear();
  ReplicaState& replica = route_->set->replica(size_t(route_->attached));
  replica.set_last_error(why);
  replica.reads_moved.fetch_add(1, std::memory_order_relaxed);
  log_info("client ", id_, " ", peer_, ": a read failed on replica ", server_pool().name(), " before any of it reached the client (",
           why, "): sent to the primary");
  server_->broken = true;
  Pool& replica_pool = server_pool();
  replica_detached();
  replica_pool.release(std::move(server_));
  route_->routed = true;   // still a read: it counts on the primary
  const bool attached = co_await attach_server(-1);
  bool sent = false;
  if (attached) {
    protocol::Buffer ignored;
    if (routing_) {
      (void)StatementRouter::route(fe::kQuery, protocol::Bytes(request).subspan(5), nullptr, server_->statements,
                                   server_->replies, ignored);
    } else {
      server_->replies.expect(fe::kQuery);
    }
    server_->in_flight = 1;
    start_pump(client_.get_executor());
    error_code ec;
    co_await server_->transport().async_write(asio::buffer(request.data(), request.size()), ec);
    sent = !ec;
    if (ec) server_->broken = true;
  }
  if (exchange_->retrying == guard) exchange_->retrying.reset();
  guard->notify();
  // The answer may have come while we were writing; then the pump left the release to us.
  if (sent && can_release_now()) co_await release_between_transactions();
  if (!sent) {
    // attach_server() told the client when it could not attach; a lost write ends like any lost server.
    if (attached) co_await send_error(fatal(sqlstate::kConnectionFailure, "server connection lost"));
    error_code ignored;
    client_.close(ignored);
  }
}

awaitable<bool> ClientSession::move_begun_transaction(uint32_t from) {
  if (server_->tx_status != 'T' || server_->in_flight != 0 || server_->unsynced || session_state_->pinned() ||
      exchange_->own_query)
    co_return true;
  // Only when what comes now starts with SET TRANSACTION READ ONLY.
  const auto& messages = reader_->messages();
  if (from >= messages.size() || reader_->forwarder().scanned()[from].frame.type != fe::kQuery) co_return true;
  const StatementAnalysis* first = messages[from].analysis.get();
  if (!first || first->statement_count() != 1 || !first->tx_controls.empty() || first->text_truncated ||
      cache::judge_replica(*local_.accesses.get(first->text).access, nullptr).verdict !=
          cache::ReplicaVerdict::kReadOnlyTransaction)
    co_return true;
  const std::string begin = route_->begun;
  const int replica = choose_replica(from);
  if (replica < 0) co_return true;
  // Nothing ran in it but BEGIN: it ends on the primary and begins again on the replica.
  co_await stop_pump();
  if (pump_running() || !server_ || server_->broken || !server_->at_rest()) co_return true;
  auto ended = co_await server_->run("ROLLBACK");
  if (!ended.ok() || server_->tx_status != 'I' || !give_back_server()) {
    if (server_) server_->broken = true;
    co_await send_error(fatal(sqlstate::kConnectionFailure, "moving a read-only transaction to a replica failed"));
    co_return false;
  }
  const bool attached = co_await attach_server(replica);
  if (!attached) co_return false;
  auto begun = co_await server_->run(begin);
  if (!begun.ok()) {
    server_->broken = true;
    co_await send_error(fatal(begun.error().sqlstate, begun.error().message));
    co_return false;
  }
  co_return true;
}

void ClientSession::note_committed_write() {
  route_->wrote = false;
  route_->written_at = route_->set->positions().begun();
  route_->must_see = 0;
}

}  // namespace pgrelay::proxy
