// Step 2 of a request's way: what is answered here, without a server (refusals, LISTEN through
// the hub, a DEALLOCATE of pgrelay's own statement, a cached answer), and writing those answers.
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/request/local_reply.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {
namespace {

namespace fe = protocol::frontend;

}  // namespace

bool ClientSession::local_answer_possible(const Request& r, uint32_t from) const {
  // Only a whole request with nothing ahead of it: its reply must come next, and the client's
  // transaction status must be known.
  const bool idle = !server_ || (server_->in_flight == 0 && !server_->unsynced && server_->replies.empty());
  return r.complete && !r.continued && r.first == from && idle;
}

bool ClientSession::answered_locally(Request& r) {
  r.tx_status = server_ ? server_->tx_status : 'I';
  return decide(r).has_value();
}

awaitable<uint32_t> ClientSession::answer_locally(bool& ended) {
  uint32_t local_until = 0;
  std::vector<char> types;
  for (Request& r : reader_->requests()) {
    if (!local_answer_possible(r, local_until)) break;
    r.tx_status = server_ ? server_->tx_status : 'I';
    auto local = decide(r);
    if (!local) break;
    if (local->listen) {
      auto failed = co_await apply_listen(*local->listen);
      if (failed) local->error = std::move(failed);
    }
    types.clear();
    for (uint32_t i = r.first; i < r.end; ++i) types.push_back(reader_->forwarder().scanned()[i].frame.type);
    protocol::Buffer reply;
    if (local->error) {
      if (!encode_error_reply(types, local->at - r.first, *local->error, r.tx_status, reply)) break;
      if (local->refused) note_refusal(*local->refused);
      log_info("client ", id_, " ", peer_, ": answered without a server: ", local->error->sqlstate, " ",
               local->error->message);
    } else {
      if (local->cached) {
        // The request's own framing around the stored answer (client_cache.cc checked its shape).
        for (char type : types) {
          if (type == fe::kParse) protocol::encode(protocol::ParseComplete{}, reply);
          if (type == fe::kBind) protocol::encode(protocol::BindComplete{}, reply);
          if (type == fe::kExecute || type == fe::kQuery) reply.insert(reply.end(), local->cached->begin(), local->cached->end());
          if (type == fe::kSync || type == fe::kQuery) protocol::encode(protocol::ReadyForQuery{r.tx_status}, reply);
        }
      } else if (!encode_command_reply(types, local->tag, r.tx_status, reply)) {
        break;
      }
    }
    if (!local->forget.empty()) reader_->forget_statement(local->forget);
    // The pump must not write at the same time (a notification in session mode).
    co_await stop_pump();
    const bool written = co_await write_client(reply);
    local_until = r.end;
    if (!written || (local->error && local->error->severity == "FATAL")) {
      ended = true;
      break;
    }
  }
  // Notifications that came while the client waited for this answer.
  if (!ended && notifications_due()) {
    const bool written = co_await write_notifications();
    if (!written) ended = true;
  }
  co_return local_until;
}

std::optional<LocalAnswer> ClientSession::decide(const Request& r) {
  const auto& messages = reader_->messages();
  if (mode_ != conf::PoolMode::kSession) {
    if (auto refused = sequence_refusal(r)) return refused;
  }
  for (uint32_t i = r.first; i < r.end; ++i) {
    const StatementAnalysis* a = messages[i].analysis.get();
    const char type = reader_->forwarder().scanned()[i].frame.type;
    if (!a || (type != fe::kQuery && type != fe::kParse)) continue;
    // Statement mode: a transaction block cannot be pooled per statement (as PgBouncer).
    if (mode_ == conf::PoolMode::kStatement && a->opens_transaction && r.tx_status == 'I') {
      return LocalAnswer{
          .at = i, .error = fatal(sqlstate::kFeatureNotSupported, "transaction blocks not allowed in statement pooling mode")};
    }
    // LISTEN/UNLISTEN alone: the database's ListenHub listens for the client (no pin).
    if (a->effects.any() && single_command(r, i)) {
      if (auto local = listen_locally(i, *a, r.tx_status)) return local;
    }
    // session_state = "reject": what would pin is refused before it runs. Inside a transaction
    // the server must fail the transaction too: screen_statement() sends it a statement that does.
    if (mode_ != conf::PoolMode::kSession && r.tx_status == 'I' &&
        pool_->settings().session_state == conf::SessionStatePolicy::kReject && a->effects.any()) {
      if (auto pin = SessionTracker::first_pinning(a->effects)) {
        return LocalAnswer{.at = i, .error = refusal(*pin), .refused = pin->kind};
      }
    }
    // SQL DEALLOCATE of a protocol-level statement: as a simple Query, or as the one statement of
    // an extended batch (psycopg 3 and libpq's PQexecParams send it so).
    if (routing_ && a->effects.has(analyzer::EffectKind::kDeallocate) && single_command(r, i)) {
      if (auto local = deallocate_locally(i, *a, r.tx_status)) return local;
    }
  }
  if (cache_observer_) {
    if (auto hit = cache_probe(r)) return LocalAnswer{.at = r.first, .cached = std::move(hit)};
  }
  return std::nullopt;
}

bool ClientSession::single_command(const Request& r, uint32_t at) const {
  const auto& scanned = reader_->forwarder().scanned();
  if (scanned[at].frame.type == fe::kQuery) return r.end - r.first == 1;
  // Parse (unnamed) first, then Bind, Describe of the portal, Execute, Sync: nothing else.
  if (at != r.first || !reader_->messages()[at].statement || !reader_->messages()[at].statement->name.empty()) return false;
  int executes = 0;
  for (uint32_t i = r.first + 1; i < r.end; ++i) {
    const protocol::Frame& f = scanned[i].frame;
    switch (f.type) {
      case fe::kBind:
        if (reader_->messages()[i].statement != reader_->messages()[at].statement) return false;
        break;
      case fe::kSync: case fe::kFlush: break;
      case fe::kExecute: ++executes; break;
      case fe::kDescribe:
        if (f.body.empty() || char(f.body[0]) != 'P') return false;
        break;
      default: return false;
    }
  }
  return executes == 1;
}

std::optional<LocalAnswer> ClientSession::deallocate_locally(uint32_t at, const StatementAnalysis& a,
                                                                            char tx_status) {
  // One DEALLOCATE of one name, outside a failed transaction (where PostgreSQL answers 25P02).
  if (a.statement_count() != 1 || a.effects.effects().size() != 1 || tx_status == 'E') return std::nullopt;
  const std::string& name = a.effects.first().name;
  auto statement = reader_->statement(name);
  // A name of the client's own SQL PREPARE is the server's to deallocate.
  if (name.empty() || !statement || statement->server_name.empty() || session_state_->sql_prepared(name))
    return std::nullopt;
  return LocalAnswer{.at = at, .tag = "DEALLOCATE", .forget = name};
}

}  // namespace pgrelay::proxy
