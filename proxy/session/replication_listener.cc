// The query cache's logical replication listener (replication_listener.h).
#include "proxy/session/replication_listener.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <thread>

#include "proxy/base/log.h"
#include "proxy/session/query_cache.h"
#include "proxy/session/shared_tier.h"

namespace pgrelay::proxy {
namespace {

constexpr std::chrono::milliseconds kSetupTimeout{30'000};   // a new slot waits for running transactions
constexpr std::chrono::milliseconds kStatusInterval{1'000};  // standby status updates, at least this often
constexpr std::chrono::milliseconds kFirstBackoff{250};
constexpr std::chrono::milliseconds kMaxBackoff{10'000};

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// The replication grammar's string: '' for a quote, nothing else escaped (it knows no E'').
std::string quote_replication_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += c;
    out += c;
  }
  return out + "'";
}

std::string quote_literal(std::string_view text) {
  std::string out = "E'";
  for (char c : text) {
    if (c == '\'' || c == '\\') out += c;
    out += c;
  }
  return out + "'";
}

// The server's SQLSTATE, turned into what the operator should do.
std::string advice(const Error& e, const std::string& user) {
  if (e.sqlstate == "42501" || e.message.find("replication role") != std::string::npos)
    return " (the role \"" + user + "\" needs the REPLICATION attribute: ALTER ROLE " + quote_ident(user) + " REPLICATION)";
  if (e.sqlstate == "53400") return " (raise the server's max_replication_slots or max_wal_senders)";
  if (e.message.find("wal_level") != std::string::npos) return " (set wal_level = logical on the server and restart it)";
  return "";
}

int64_t unix_micros_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string ReplicationStatus::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

std::string ReplicationStatus::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void ReplicationStatus::set_state(std::string state, std::string error) {
  std::lock_guard lock(mu_);
  state_ = std::move(state);
  if (!error.empty()) last_error_ = std::move(error);
}

ReplicationListener::ReplicationListener(asio::any_io_executor ex, const conf::Config& config, const conf::DatabaseEntry& entry,
                                         QueryCache& cache, SharedTier* shared, std::shared_ptr<ReplicationStatus> status)
    : ex_(ex),
      entry_(entry),
      tls_(config.server_tls),
      cache_(cache),
      shared_(shared),
      status_(std::move(status)),
      server_database_(QueryCache::server_database(entry.host, entry.port, entry.dbname.empty() ? entry.name : entry.dbname)),
      database_id_(uint64_t(QueryCache::database_id(server_database_))),
      stream_(ex),
      catalog_(ex),
      backoff_timer_(ex) {
  // Unprotected until the stream is up: nothing of this database is served or stored.
  cache_.open_window(server_database_);
  window_open_ = true;
}

ReplicationListener::~ReplicationListener() = default;

std::string ReplicationListener::default_slot_name(const conf::DatabaseEntry& entry, int index) {
  if (!entry.cache.replication.slot.empty()) return entry.cache.replication.slot;
  std::string name = "pgrelay_";
  if (entry.cache.replication.slot_persistent) {
    for (char c : entry.name) {
      const char l = char(std::tolower(static_cast<unsigned char>(c)));
      name += (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') ? l : '_';
    }
  } else {
    name += std::to_string(::getpid()) + "_" + std::to_string(index);
  }
  return name.substr(0, 63);
}

std::vector<std::pair<std::string, std::string>> ReplicationListener::connect_params(bool replication) const {
  std::vector<std::pair<std::string, std::string>> p = {
      {"host", entry_.host},
      {"port", std::to_string(entry_.port)},
      {"dbname", entry_.dbname.empty() ? entry_.name : entry_.dbname},
      {"user", entry_.user},
      {"sslmode", conf::to_string(entry_.server_tls_sslmode)},
      {"application_name", "pgrelay cache replication"},
  };
  if (!entry_.password.empty()) p.emplace_back("password", entry_.password);
  if (!tls_.ca_file.empty()) p.emplace_back("sslrootcert", tls_.ca_file);
  if (!tls_.cert_file.empty()) p.emplace_back("sslcert", tls_.cert_file);
  if (!tls_.key_file.empty()) p.emplace_back("sslkey", tls_.key_file);
  if (replication) p.emplace_back("replication", "database");
  return p;
}

void ReplicationListener::stop() {
  stopping_ = true;
  backoff_timer_.cancel();
  stream_.cancel();
  catalog_.cancel();
}

void ReplicationListener::lose_stream(const std::string& why) {
  if (status_->streaming.exchange(false)) {
    status_->stream_losses.fetch_add(1, std::memory_order_relaxed);
    log_warning("cache replication for database \"", entry_.name, "\": stream lost (", why,
                "); its cached answers are not served until it resumes");
  }
  if (!window_open_) {
    cache_.open_window(server_database_);
    window_open_ = true;
  }
}

awaitable<void> ReplicationListener::run() {
  std::chrono::milliseconds backoff = kFirstBackoff;
  while (!stopping_) {
    const auto started = std::chrono::steady_clock::now();
    Error why = co_await stream_once();
    stream_.close();
    catalog_.close();
    lose_stream(why.message);
    if (stopping_) break;
    status_->set_state("reconnecting", why.message);
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(30)) backoff = kFirstBackoff;   // it had been up a while
    // Said once per distinct reason: a listener that cannot connect retries every 10 s for ever.
    const conf::LogLevel level = why.message != last_logged_ ? conf::LogLevel::kWarning : conf::LogLevel::kDebug;
    log(level, "cache replication for database \"", entry_.name, "\": ", why.message, "; retrying in ", backoff.count(), " ms");
    last_logged_ = why.message;
    backoff_timer_.expires_after(backoff);
    error_code ec;
    co_await backoff_timer_.async_wait(ec_awaitable(ec));
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
  status_->set_state("stopped", "");
  stopped_ = true;
}

awaitable<Error> ReplicationListener::stream_once() {
  status_->set_state("connecting", "");
  auto connected = co_await catalog_.connect(connect_params(false), kSetupTimeout);
  if (!connected.ok()) {
    status_->connect_failures.fetch_add(1, std::memory_order_relaxed);
    co_return connected.error();
  }
  auto published = co_await ensure_publication();
  if (!published.ok()) {
    status_->connect_failures.fetch_add(1, std::memory_order_relaxed);
    co_return published.error();
  }
  connected = co_await stream_.connect(connect_params(true), kSetupTimeout);
  if (!connected.ok()) {
    status_->connect_failures.fetch_add(1, std::memory_order_relaxed);
    const Error& e = connected.error();
    co_return Error{e.sqlstate, "cannot open a replication connection: " + e.message + advice(e, entry_.user)};
  }
  // PostgreSQL builds a new slot's snapshot once the transactions in progress on the whole server
  // have ended: a long one, or a prepared one left uncommitted, holds this step up.
  status_->set_state("creating_slot", "");
  auto slot = co_await create_slot();
  if (!slot.ok()) {
    status_->connect_failures.fetch_add(1, std::memory_order_relaxed);
    co_return slot.error();
  }
  const std::string start = "START_REPLICATION SLOT " + quote_ident(status_->slot) + " LOGICAL 0/0 (proto_version '1', publication_names " +
                            quote_replication_literal(quote_ident(status_->publication)) + ")";
  auto started = co_await stream_.start_copy_both(start, kSetupTimeout);
  if (!started.ok()) {
    status_->connect_failures.fetch_add(1, std::memory_order_relaxed);
    co_return Error{started.error().sqlstate, "cannot start replication from slot \"" + status_->slot + "\": " +
                                                  started.error().message + advice(started.error(), entry_.user)};
  }
  // Streaming: every commit from here on reaches us. What committed while the window was open
  // (none of it served or stored) is dropped with the window.
  transaction_ = {};
  ancestors_.clear();
  if (window_open_) {
    cache_.close_window(server_database_);
    window_open_ = false;
  }
  status_->streaming = true;
  status_->set_state("streaming", "");
  last_logged_.clear();
  log_info("cache replication for database \"", entry_.name, "\": streaming from slot \"", status_->slot, "\" (publication \"",
           status_->publication, "\"", status_->persistent ? ", persistent" : ", temporary", ")");
  next_status_ = std::chrono::steady_clock::now() + kStatusInterval;
  while (!stopping_) {
    auto message = co_await stream_.read_copy(next_status_);
    if (!message.ok()) co_return message.error();
    if (*message) {
      auto handled = co_await handle(**message);
      if (!handled.ok()) co_return handled.error();
    }
    if (std::chrono::steady_clock::now() >= next_status_) {
      auto sent = co_await send_status(false);
      if (!sent.ok()) co_return sent.error();
    }
  }
  co_return Error{"", "stopping"};
}

awaitable<Result<void>> ReplicationListener::ensure_publication() {
  const std::string& name = status_->publication;
  auto found = co_await catalog_.query("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = " + quote_literal(name), kSetupTimeout);
  if (!found.ok()) co_return found.error();
  if (!found->empty()) co_return Result<void>{};
  if (!entry_.cache.replication.publication.empty()) {
    co_return Error{"", "publication \"" + name + "\" (databases." + entry_.name +
                            ".cache.publication) does not exist on the server: create it (CREATE PUBLICATION " +
                            quote_ident(name) + " FOR ALL TABLES, or FOR TABLE ...)"};
  }
  auto created = co_await catalog_.query("CREATE PUBLICATION " + quote_ident(name) + " FOR ALL TABLES", kSetupTimeout);
  if (!created.ok() && created.error().sqlstate != "42710") {   // 42710: another pgrelay just made it
    co_return Error{created.error().sqlstate, "cannot create publication \"" + name + "\" FOR ALL TABLES as \"" + entry_.user +
                                                  "\": " + created.error().message +
                                                  " (it needs a superuser; or create a publication and name it with databases." +
                                                  entry_.name + ".cache.publication)"};
  }
  if (created.ok()) log_info("cache replication for database \"", entry_.name, "\": created publication \"", name, "\" FOR ALL TABLES");
  co_return Result<void>{};
}

awaitable<Result<void>> ReplicationListener::create_slot() {
  const bool persistent = status_->persistent;
  const std::string sql = "CREATE_REPLICATION_SLOT " + quote_ident(status_->slot) + (persistent ? "" : " TEMPORARY") +
                          " LOGICAL pgoutput NOEXPORT_SNAPSHOT";
  auto created = co_await stream_.query(sql, kSetupTimeout);
  if (created.ok()) {
    // One row: slot_name, consistent_point, snapshot_name, output_plugin.
    const bool has_point = !created->empty() && created->front().size() > 1 && created->front()[1];
    log_info("cache replication for database \"", entry_.name, "\": created ", persistent ? "persistent" : "temporary", " slot \"",
             status_->slot, "\"", has_point ? " at " + *created->front()[1] : std::string());
    co_return Result<void>{};
  }
  if (persistent && created.error().sqlstate == "42710") co_return Result<void>{};   // made by an earlier run: resume from it
  const Error& e = created.error();
  const std::string waited = e.sqlstate.empty() && e.message.rfind("no answer within", 0) == 0
                                 ? " (the server builds the slot once every transaction in progress has ended: look for a long"
                                   " one in pg_stat_activity with backend_xid set, or in pg_prepared_xacts)"
                                 : advice(e, entry_.user);
  co_return Error{e.sqlstate, "cannot create replication slot \"" + status_->slot + "\": " + e.message + waited};
}

awaitable<Result<void>> ReplicationListener::handle(const std::vector<std::byte>& copy_data) {
  cache::StreamMessage message;
  std::string error;
  if (!cache::decode_stream_message(copy_data, message, error)) co_return Error{"", "bad replication message: " + error};
  status_->server_wal_end.store(std::max(status_->server_wal_end.load(std::memory_order_relaxed), message.wal_end),
                                std::memory_order_relaxed);
  if (message.kind == cache::StreamMessage::Kind::kKeepalive) {
    // Everything sent before this keepalive has been applied: outside a transaction, the slot
    // may forget up to the server's end of WAL (WAL of other databases, or of unpublished tables).
    if (!transaction_.in_transaction() && message.wal_end > confirmed_) confirmed_ = message.wal_end;
    if (!message.reply_requested) co_return Result<void>{};
    auto sent = co_await send_status(false);
    co_return sent;
  }
  cache::PgoutputMessage decoded;
  if (!cache::decode_pgoutput(message.data, decoded, error)) co_return Error{"", "bad pgoutput message: " + error};
  cache::PgoutputTransaction::Step step{};
  cache::PgoutputTransaction::Committed committed;
  if (!transaction_.feed(decoded, step, committed, error)) co_return Error{"", "pgoutput out of order: " + error};
  if (decoded.kind == cache::PgoutputMessage::Kind::kTruncate) status_->truncates.fetch_add(1, std::memory_order_relaxed);
  if (step == cache::PgoutputTransaction::Step::kRelation) {
    auto learned = co_await learn_ancestors(decoded.relations.front());
    co_return learned;
  }
  if (step == cache::PgoutputTransaction::Step::kCommitted) {
    auto applied = co_await apply(committed);
    co_return applied;
  }
  co_return Result<void>{};
}

awaitable<Result<void>> ReplicationListener::learn_ancestors(cache::Oid relation) {
  // Asked again on every Relation message: the server resends one after the relation changed
  // (ATTACH PARTITION, ALTER TABLE ... INHERIT).
  const std::string sql =
      "WITH RECURSIVE up(oid) AS (SELECT " + std::to_string(relation) +
      "::pg_catalog.oid UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.oid) SELECT oid FROM up";
  auto rows = co_await catalog_.query(sql, kSetupTimeout);
  if (!rows.ok()) {
    co_return Error{rows.error().sqlstate,
                    "cannot read the inheritance of relation " + std::to_string(relation) + ": " + rows.error().message};
  }
  std::vector<cache::Oid> family = {relation};
  for (const auto& row : *rows) {
    if (row.empty() || !row[0]) continue;
    const cache::Oid oid = cache::Oid(std::strtoul(row[0]->c_str(), nullptr, 10));
    if (oid != relation) family.push_back(oid);
  }
  ancestors_[relation] = std::move(family);
  co_return Result<void>{};
}

awaitable<Result<void>> ReplicationListener::apply(const cache::PgoutputTransaction::Committed& committed) {
  std::vector<cache::TableId> ids;
  for (cache::Oid oid : committed.relations) {
    auto it = ancestors_.find(oid);
    if (it == ancestors_.end()) {   // the server sends a Relation before a relation's first change: learn it now
      auto learned = co_await learn_ancestors(oid);
      if (!learned.ok()) co_return learned;
      it = ancestors_.find(oid);
    }
    for (cache::Oid member : it->second) ids.push_back(QueryCache::table_id(cache::DatabaseId(database_id_), member));
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (cache::TableId id : ids) cache_.generations().bump(id);
  if (!ids.empty()) {
    cache_.counters().table_bumps.fetch_add(ids.size(), std::memory_order_relaxed);
    status_->table_bumps.fetch_add(ids.size(), std::memory_order_relaxed);
    if (shared_) {
      // The other instances learn of it from Redis (SharedTier counts it, and owes it when Redis
      // does not answer: then the database's shared epoch moves once Redis is back).
      const bool confirmed = co_await shared_->bump(cache::DatabaseId(database_id_), std::move(ids), false);
      (void)confirmed;
    }
  }
  status_->commits.fetch_add(1, std::memory_order_relaxed);
  const int64_t lag_us = unix_micros_now() - (committed.commit_time + cache::kPostgresEpochUnixMicros);
  status_->last_apply_lag_us.store(lag_us, std::memory_order_relaxed);
  status_->apply_lag_seconds.observe(std::chrono::microseconds(std::max<int64_t>(lag_us, 0)));
  if (committed.end_lsn > confirmed_) confirmed_ = committed.end_lsn;
  co_return Result<void>{};
}

awaitable<Result<void>> ReplicationListener::send_status(bool reply_requested) {
  next_status_ = std::chrono::steady_clock::now() + kStatusInterval;
  const int64_t now = unix_micros_now() - cache::kPostgresEpochUnixMicros;
  auto sent = co_await stream_.write_copy(cache::encode_standby_status(confirmed_, now, reply_requested));
  if (sent.ok()) status_->confirmed_lsn.store(confirmed_, std::memory_order_relaxed);
  co_return sent;
}

ReplicationListeners::ReplicationListeners(asio::any_io_executor ex, const conf::Config& config, QueryCache& cache, SslCtxPtr server_tls)
    : ex_(ex) {
  int index = 0;
  for (const auto& [name, entry] : config.databases) {
    if (!entry.cache.replication.enabled || !entry.cache.enabled) continue;
    if (cache.shared() && !shared_) {
      shared_ = std::make_unique<SharedTier>(ex, *cache.shared(), server_tls, cache.counters(), cache.lease());
    }
    const auto& r = entry.cache.replication;
    auto status = std::make_shared<ReplicationStatus>(name, ReplicationListener::default_slot_name(entry, index++),
                                                      r.publication.empty() ? "pgrelay" : r.publication, r.slot_persistent);
    statuses_.push_back(status);
    listeners_.push_back(std::make_unique<ReplicationListener>(ex, config, entry, cache, shared_.get(), status));
    log_info("cache replication for database \"", name, "\": slot \"", status->slot, "\", publication \"", status->publication, "\"");
  }
  for (auto& l : listeners_) {
    asio::co_spawn(ex_, l->run(), [](std::exception_ptr e) {
      if (e) log_exception(e, "cache replication listener");
    });
  }
}

ReplicationListeners::~ReplicationListeners() = default;

void ReplicationListeners::stop(std::chrono::milliseconds timeout) {
  for (auto& l : listeners_) {
    ReplicationListener* listener = l.get();
    asio::post(ex_, [listener] { listener->stop(); });
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!stopped() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

bool ReplicationListeners::stopped() const {
  return std::all_of(listeners_.begin(), listeners_.end(), [](const auto& l) { return l->stopped(); });
}

}  // namespace pgrelay::proxy
