// The client session's part in the query-result cache (docs/cache.md): which requests may be
// answered from it, the key of their answer, and the catalog facts fetched after a transaction.
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/request/warm_list.h"
#include "proxy/session/cache_observer.h"
#include "proxy/session/client_session.h"

namespace pgrelay::proxy {

void ClientSession::start_cache(const conf::DatabaseEntry& entry, const conf::DatabaseEntry& server_entry,
                                const std::string& server_user) {
  if (!entry.cache.enabled || !services_.cache) return;
  const std::string dbname = server_entry.dbname.empty() ? database_ : server_entry.dbname;
  CatalogKey key{QueryCache::server_database(server_entry.host, server_entry.port, dbname), server_user, cache_search_path()};
  // A warm replay's lookups are not its database's clients' (cache_warmer.h), nor counted for warming.
  CacheDatabaseStats* stats = warming_ ? &services_.cache->warm_stats() : &services_.cache->database_stats(database_);
  cache_observer_ = std::make_unique<CacheObserver>(*services_.cache, local_.accesses, std::move(key), entry.cache.default_ttl,
                                                     cache_rules(entry.cache.rules), stats);
  cache_observer_->set_shared_tier(shared_tier());
  if (!warming_ && services_.cache->warm_list().enabled()) {
    cache_observer_->on_hit([this](std::string_view text, uint64_t key_hash, bool extended) {
      WarmList::DescribeExtended bind;
      if (extended) bind = [this] { return warm_extended(); };
      services_.cache->warm_list().hit(key_hash, text, [this] { return warm_description(); }, bind);
    });
  }
  exchange_->events.add_observer(cache_observer_.get());
}

SharedTier* ClientSession::shared_tier() {
  const auto& settings = services_.cache->shared();
  if (!settings) return nullptr;
  if (!local_.shared_tier) {
    // On this worker's loop (the client's socket is on it), shared by its sessions.
    local_.shared_tier = std::make_unique<SharedTier>(client_.get_executor(), *settings, services_.tls.server(),
                                                      services_.cache->counters(), services_.cache->lease());
  }
  return local_.shared_tier.get();
}

std::string ClientSession::cache_search_path() const {
  if (const auto& sets = session_state_->sets()) {
    if (auto it = sets->find("search_path"); it != sets->end()) return it->second.as_sql();
  }
  std::string path;
  for (const Setting& s : *startup_settings_) {
    if (s.name == "search_path") path = s.value;   // a later one wins, as in the startup packet
  }
  return path;
}

void ClientSession::refresh_cache_key() {
  if (!cache_observer_) return;
  CatalogKey key = cache_observer_->catalog_key();
  key.search_path = cache_search_path();
  cache_observer_->set_catalog_key(std::move(key));
}

namespace {

// An extended request the cache can answer: [Parse (unnamed)] Bind, [Describe portal], Execute
// (all rows), Sync, on the unnamed portal. What goes into its key.
struct ExtendedRead {
  const StatementAnalysis* analysis = nullptr;
  protocol::Bytes param_types;
  protocol::Bind bind;
  bool describe = false;
};

std::optional<ExtendedRead> extended_read(const Request& r, const RequestReader& reader) {
  const auto& scanned = reader.forwarder().scanned();
  const auto& messages = reader.messages();
  ExtendedRead out;
  const ClientStatement* parsed = nullptr;
  const ClientStatement* bound = nullptr;
  bool executed = false;
  for (uint32_t i = r.first; i < r.end; ++i) {
    const protocol::Frame& f = scanned[i].frame;
    if (f.body.size() != f.body_length) return std::nullopt;   // not all of it in hand
    switch (f.type) {
      case 'P':
        if (i != r.first || !messages[i].statement || !messages[i].statement->name.empty()) return std::nullopt;
        parsed = messages[i].statement.get();
        break;
      case 'B': {
        auto b = protocol::decode_bind(f.body);
        if (bound || !b.ok() || !b->portal.empty() || !messages[i].statement) return std::nullopt;
        bound = messages[i].statement.get();
        if (parsed && bound != parsed) return std::nullopt;
        out.bind = std::move(*b);
        break;
      }
      case 'D':
        if (!bound || executed || f.body.size() < 2 || char(f.body[0]) != 'P' || char(f.body[1]) != 0) return std::nullopt;
        out.describe = true;
        break;
      case 'E': {
        auto e = protocol::decode_execute(f.body);
        if (!bound || executed || !e.ok() || !e->portal.empty() || e->max_rows != 0) return std::nullopt;
        executed = true;
        break;
      }
      case 'S':
        if (i + 1 != r.end || !executed) return std::nullopt;
        break;
      default:
        return std::nullopt;
    }
  }
  if (!bound || !executed || !bound->analysis) return std::nullopt;
  out.analysis = bound->analysis.get();
  out.param_types = bound->param_types();
  return out;
}

// A text-format parameter the server would read against the clock ('now', 'today', ...).
bool time_dependent_parameter(const protocol::Bind& b) {
  for (size_t i = 0; i < b.params.size(); ++i) {
    const int16_t format = b.param_formats.empty() ? 0 : b.param_formats[b.param_formats.size() == 1 ? 0 : i];
    if (format == 0 && b.params[i] && cache::time_dependent_literal(protocol::as_string_view(*b.params[i]))) return true;
  }
  return false;
}

}  // namespace

std::shared_ptr<const WarmExtended> ClientSession::warm_extended() const {
  // The request that hit (cache_probe's), still in hand: what its key was made of.
  const Request* r = exchange_->cache_probe.request;
  if (!r) return nullptr;
  const auto read = extended_read(*r, *reader_);
  if (!read) return nullptr;
  auto out = std::make_shared<WarmExtended>();
  out->param_types.assign(read->param_types.begin(), read->param_types.end());
  out->param_formats = read->bind.param_formats;
  out->result_formats = read->bind.result_formats;
  out->describe = read->describe;
  size_t total = 0;
  for (const auto& v : read->bind.params) {
    if (!v) {
      out->params.emplace_back(std::nullopt);
      continue;
    }
    total += v->size();
    if (total > WarmExtended::kMaxParamBytes) return nullptr;
    out->params.emplace_back(protocol::Buffer(v->begin(), v->end()));
  }
  return out;
}

std::shared_ptr<const std::vector<std::byte>> ClientSession::cache_probe(const Request& r, bool join) {
  if (exchange_->cache_probe.request == &r) return exchange_->cache_probe.hit;
  exchange_->cache_probe = {&r, nullptr, nullptr, std::nullopt};
  // Outside a transaction, from a client whose session pgrelay can describe in full (a pinned
  // one holds state the key cannot: a role, temporary tables, ...).
  // Unscreened (session mode without startup settings), its SETs are unknown to the key.
  if (r.tx_status != 'I' || session_state_->pinned() || !screening_) return nullptr;
  const StatementAnalysis* a = nullptr;
  std::optional<ExtendedRead> extended;
  if (reader_->forwarder().scanned()[r.first].frame.type == 'Q') {
    if (r.end - r.first != 1) return nullptr;
    a = reader_->messages()[r.first].analysis.get();
  } else {
    // Extended: only where pgrelay routes prepared statements, so a Parse answered here is one
    // the router prepares on the server when a later request needs it.
    if (!routing_) return nullptr;
    extended = extended_read(r, *reader_);
    if (!extended || time_dependent_parameter(extended->bind)) return nullptr;
    a = extended->analysis;
  }
  // A text cut at AnalysisCache::kMaxKeptText is not the statement: it may never be a key.
  if (!a || a->statement_count() != 1 || a->text_truncated) return nullptr;
  // The whole text, comments and all: a hint in them (cache/policy.h) changes how it is cached,
  // so the hinted text is a key of its own.
  const std::string_view text = a->text;
  if (AccessMemo::Entry& memo = local_.accesses.get(text); !memo.access->cacheable_text) {   // the text alone says no: no key to build
    services_.cache->counters().not_cacheable.fetch_add(1, std::memory_order_relaxed);
    CachePolicy& policy = cache_observer_->policy();
    policy.refused(policy.text(memo.policy, text), memo.access->not_cacheable);   // SHOW CACHES' why_not
    return nullptr;
  }
  // The key: whose catalog view it is and every setting the client has (built again only when
  // its ParameterStatus map or its SETs change: both are shared and replaced, never edited),
  // the text, and for an extended request its parameter types, formats and values and its
  // result formats.
  if (exchange_->cache_key.prefix.empty() || exchange_->cache_key.params != client_params_.get() || exchange_->cache_key.sets != session_state_->sets().get()) {
    refresh_cache_key();
    const CatalogKey& who = cache_observer_->catalog_key();
    cache::KeyBuilder prefix;
    prefix.add('d', who.database).add('u', who.user).add('S', who.search_path);
    for (const auto& [name, value] : *client_params_) {
      if (name != "application_name") prefix.add('p', name).add('v', value);
    }
    if (const auto& sets = session_state_->sets()) {
      for (const auto& [name, value] : *sets) prefix.add('s', name).add('v', value.as_sql());
    }
    for (const Setting& s : *startup_settings_) {
      if (s.name != "application_name") prefix.add('o', s.name).add('v', s.value);
    }
    exchange_->cache_key = {client_params_.get(), session_state_->sets().get(), prefix.bytes()};
  }
  cache::KeyBuilder key(exchange_->cache_key.prefix);
  key.add('Q', text);
  if (extended) {
    const protocol::Bind& b = extended->bind;
    key.add('E', uint32_t(extended->describe)).add('t', extended->param_types);
    key.add('n', uint32_t(b.param_formats.size()));
    for (int16_t f : b.param_formats) key.add('f', uint32_t(uint16_t(f)));
    key.add('n', uint32_t(b.params.size()));
    for (const auto& v : b.params) {
      if (v) key.add('v', *v);
      else key.add_null('v');
    }
    key.add('n', uint32_t(b.result_formats.size()));
    for (int16_t f : b.result_formats) key.add('r', uint32_t(uint16_t(f)));
  }
  const CacheObserver::Shape shape{extended.has_value(), extended ? extended->describe : true};
  auto found = cache_observer_->lookup(text, key.finish(), shape, join);
  exchange_->cache_probe.hit = std::move(found.hit);
  exchange_->cache_probe.in_flight = std::move(found.in_flight);
  exchange_->cache_probe.shared = std::move(found.shared);
  return exchange_->cache_probe.hit;
}

awaitable<void> ClientSession::bump_shared_cache() {
  SharedTier* tier = shared_tier();
  const cache::DatabaseId database = cache_observer_->database();
  std::vector<CacheObserver::SharedBump> bumps = cache_observer_->take_shared_bumps();
  for (CacheObserver::SharedBump& b : bumps) {
    const bool confirmed = co_await tier->bump(database, std::move(b.tables), b.whole_database, b.schema);
    if (!confirmed) log_debug("client ", id_, ": the Redis tier did not confirm a bump: owed");
  }
}

awaitable<void> ClientSession::open_shared_window() {
  SharedTier* tier = shared_tier();
  const cache::DatabaseId database = cache_observer_->database();
  const bool opened = co_await tier->open_window(database);
  if (!cache_observer_) {   // gone meanwhile: nothing would close it
    tier->close_window(database);
    co_return;
  }
  cache_observer_->shared_window_opened();   // held (and renewed) whether or not Redis took it now
  if (!opened) log_debug("client ", id_, ": the Redis tier did not take a CALL/DO window: its epoch bump is owed");
}

awaitable<void> ClientSession::ask_shared_cache() {
  SharedAsk ask = std::move(*exchange_->cache_probe.shared);
  exchange_->cache_probe.shared.reset();
  SharedTier* tier = shared_tier();
  const auto started = std::chrono::steady_clock::now();
  const SharedTier::Check check = co_await tier->check(ask.database, ask.tables, std::move(ask.answer_key));
  if (!cache_observer_) co_return;
  exchange_->cache_probe.hit = cache_observer_->shared_answered(check);
  if (CacheDatabaseStats* stats = cache_observer_->stats()) stats->redis_seconds.observe(std::chrono::steady_clock::now() - started);
}

awaitable<void> ClientSession::wait_for_fill(const Request& r) {
  // Another session is sending this very read: its answer, stored, serves this one too. Wait
  // a bounded time (a slow query must not hold everyone behind it for long), then look again
  // without joining, so a miss then goes to the server itself.
  constexpr auto kMaxWait = std::chrono::seconds(5);
  auto flight = std::move(exchange_->cache_probe.in_flight);
  auto ex = co_await asio::this_coro::executor;
  auto landed = std::make_shared<Event>(ex);
  if (flight->wait(ex, landed)) co_await landed->wait_until(asio::steady_timer::clock_type::now() + kMaxWait);
  exchange_->cache_probe = {};
  (void)cache_probe(r, /*join=*/false);
}

awaitable<bool> ClientSession::prefetch_cache_catalog(uint32_t from) {
  // The request about to go out had a cacheable text whose catalog facts were missing: fetch
  // them now, on the connection it will use, so its own answer can already be stored. The pump
  // reads that connection: stopped for the fetch, started again by the caller. (It cannot
  // give the connection back meanwhile: forward() holds request_pending.)
  co_await stop_pump();
  if (!server_ || server_->broken) co_return false;
  const bool fetched = co_await run_own_query(*server_, fetch_cache_catalog(*server_));
  if (!fetched) co_return false;
  for (const Request& r : reader_->requests()) {
    if (r.first != from) continue;
    exchange_->cache_probe = {};
    (void)cache_probe(r, /*join=*/false);   // arms the fill (a hit now is left to the server: rare)
    if (exchange_->cache_probe.shared) {
      // Only the versions the fill is read under: this request goes to the server anyway.
      exchange_->cache_probe.shared->answer_key.clear();
      cache_observer_->forget_candidate();
      co_await ask_shared_cache();
    }
    break;
  }
  co_return true;
}

namespace {

// Runs in the catalog query's own implicit transaction, so it holds for that query alone.
constexpr std::string_view kCatalogLockTimeout = "SELECT pg_catalog.set_config('lock_timeout', '10ms', true)";

}  // namespace

awaitable<bool> ClientSession::fetch_cache_catalog(ServerConnection& server) {
  // The connection carries this client's settings, so names resolve as they do for the client.
  refresh_cache_key();
  const CatalogKey key = cache_observer_->catalog_key();
  std::vector<std::pair<cache::RelationName, cache::RelationInfo>> relations;
  std::vector<std::pair<cache::RoutineName, cache::RoutineInfo>> routines;
  services_.cache->counters().catalog_fetches.fetch_add(1, std::memory_order_relaxed);
  auto failed = [&](const Error& e) {
    services_.cache->counters().catalog_fetch_failures.fetch_add(1, std::memory_order_relaxed);
    if (e.sqlstate == sqlstate::kLockNotAvailable)
      log_info("client ", id_, " ", peer_, ": catalog facts for the query cache not read: ", e.message,
               " (another transaction holds a lock on a view they read; its reads go to the server meanwhile)");
    else
      log_warning("client ", id_, " ", peer_,
                  ": reading catalog facts for the query cache failed (its reads go to the server): ", e.message);
    server.statements.unnamed = 0;
    // A lost connection is nobody's to reuse; an SQL error left it at rest.
    if (e.sqlstate.rfind("08", 0) == 0) server.broken = true;
    return !server.broken;
  };
  if (auto names = cache_observer_->take_wanted_relations(); !names.empty()) {
    // A view's definition (pg_get_viewdef) waits for its lock: never behind another
    // transaction's DDL on it, which the client's own statement may not need at all. The
    // session's next request would wait for this query, and then cut it off (stop_pump).
    auto rows = co_await server.query_rows(cache::relations_sql(), cache::FetchedCatalog::relation_params(names),
                                           kCatalogLockTimeout);
    if (!rows.ok()) co_return failed(rows.error());
    for (size_t i = 0; i < names.size() && i < rows->size(); ++i) {
      std::vector<cache::Column> columns;
      for (const auto& c : (*rows)[i]) columns.push_back(c ? cache::Column(*c) : cache::Column());
      cache::RelationInfo info;
      if (cache::parse_relation_row(columns, info)) relations.emplace_back(names[i], std::move(info));
    }
  }
  if (auto names = cache_observer_->take_wanted_routines(); !names.empty()) {
    auto rows = co_await server.query_rows(cache::routines_sql(), cache::FetchedCatalog::routine_params(names));
    if (!rows.ok()) co_return failed(rows.error());
    for (size_t i = 0; i < names.size() && i < rows->size(); ++i) {
      std::vector<cache::Column> columns;
      for (const auto& c : (*rows)[i]) columns.push_back(c ? cache::Column(*c) : cache::Column());
      cache::RoutineInfo info;
      if (cache::parse_routine_row(columns, info)) routines.emplace_back(names[i], info);
    }
  }
  server.statements.unnamed = 0;   // the fetch used the unnamed statement
  services_.cache->add_facts(key, relations, routines);
  co_return true;
}

}  // namespace pgrelay::proxy
