// Reads routed to a database's replicas (docs/replicas.md): which requests may go, to which
// replica, and the client's own writes, which its later reads must see.
#include "cache/policy.h"
#include "cache/replica_judgement.h"
#include "protocol/messages.h"
#include "proxy/base/log.h"
#include "proxy/session/cache_observer.h"
#include "proxy/session/client_session.h"

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

bool ClientSession::statement_on_replica(const StatementAnalysis& a) {
  if (a.text_truncated || a.effects.any()) return false;
  // A hint decides over the judgement (not over lag or the client's own writes).
  const cache::RouteHint hint = cache::parse_hint(a.text).route;
  if (hint != cache::RouteHint::kNone) return hint == cache::RouteHint::kReplica;
  // The catalog facts the query cache fetched for this client, when the database caches.
  std::shared_ptr<const cache::FetchedCatalog> facts;
  if (cache_observer_) facts = services_.cache->catalog(cache_observer_->catalog_key(), route_->catalog_max_age);
  cache::ReplicaJudgement j;
  const analyzer::Fingerprint* fp = a.statement_count() == 1 ? a.fingerprint(0) : nullptr;
  auto& verdicts = local_.replica_verdicts;
  if (auto it = fp ? verdicts.find(fp->hash) : verdicts.end(); it != verdicts.end() && it->second.facts == facts) {
    j = it->second.judgement;
  } else {
    j = cache::judge_replica(*local_.accesses.get(a.text).access, facts.get());
    if (fp) {
      if (verdicts.size() >= WorkerLocal::kMaxReplicaVerdicts) verdicts.clear();
      verdicts[fp->hash] = WorkerLocal::ReplicaVerdict{.facts = facts, .judgement = j};
    }
  }
  switch (j.verdict) {
    case cache::ReplicaVerdict::kReplica: return true;
    case cache::ReplicaVerdict::kReadOnlyTransaction:
      // BEGIN ... READ ONLY opens a transaction a replica can run whole. SET TRANSACTION READ
      // ONLY comes too late: the transaction already has its server.
      return !a.tx_controls.empty() && a.tx_controls.front().kind == TxControl::Kind::kBegin;
    case cache::ReplicaVerdict::kPrimary: return false;
  }
  return false;
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

void ClientSession::note_committed_write() {
  route_->wrote = false;
  route_->written_at = route_->set->positions().begun();
  route_->must_see = 0;
}

}  // namespace pgrelay::proxy
