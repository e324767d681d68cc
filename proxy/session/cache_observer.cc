// One session's part in the query-result cache: lookups, fills, and the bumps its writes owe.
#include "proxy/session/cache_observer.h"

#include <algorithm>

#include "cache/shared_keys.h"
#include "cache/shared_value.h"
#include "protocol/messages.h"
#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

namespace be = protocol::backend;

// The answer as a hit replays it: RowDescription (when `describe`), DataRows, CommandComplete.
// The ParseComplete and BindComplete of an extended request are dropped (the replay makes its
// own for the request in hand); anything else (a notice, an error, a suspended portal) means the
// answer is not one to store.
bool canonical_answer(const std::vector<std::byte>& captured, bool describe, std::vector<std::byte>& out) {
  size_t at = 0;
  bool described = false, completed = false, rows = false;
  while (at + 5 <= captured.size()) {
    const char type = char(captured[at]);
    const uint32_t length = (uint32_t(captured[at + 1]) << 24) | (uint32_t(captured[at + 2]) << 16) |
                            (uint32_t(captured[at + 3]) << 8) | uint32_t(captured[at + 4]);
    if (length < 4 || at + 1 + length > captured.size() || completed) return false;
    switch (type) {
      case be::kParseComplete:
      case be::kBindComplete:
        if (described || rows) return false;
        break;
      case be::kRowDescription:
        if (!describe || described || rows) return false;
        described = true;
        out.insert(out.end(), captured.begin() + at, captured.begin() + at + 1 + length);
        break;
      case be::kDataRow:
        rows = true;
        out.insert(out.end(), captured.begin() + at, captured.begin() + at + 1 + length);
        break;
      case be::kCommandComplete:
        completed = true;
        out.insert(out.end(), captured.begin() + at, captured.begin() + at + 1 + length);
        break;
      default:
        return false;
    }
    at += 1 + length;
  }
  return at == captured.size() && completed && described == describe;
}

}  // namespace

CacheObserver::CacheObserver(QueryCache& cache, AccessMemo& memo, CatalogKey catalog, std::chrono::steady_clock::duration ttl,
                             std::shared_ptr<const CacheRules> rules, CacheDatabaseStats* stats)
    : cache_(cache), memo_(memo), catalog_(std::move(catalog)), database_(QueryCache::database_id(catalog_.database)), ttl_(ttl),
      stats_(stats), policy_(cache.fingerprints(), std::move(rules), std::chrono::duration_cast<cache::Ttl>(ttl)) {}

void CacheObserver::set_catalog_key(CatalogKey key) {
  if (key == catalog_) return;
  catalog_ = std::move(key);
  view_.reset();
}

const std::shared_ptr<const cache::FetchedCatalog>& CacheObserver::view() {
  // The process-wide map is asked only when facts changed anywhere, the key changed, or the
  // view held may have grown too old (checked a few times a TTL).
  const uint64_t version = cache_.catalogs_version();
  const auto now = std::chrono::steady_clock::now();
  if (!view_ || version != view_version_ || now >= view_checked_ + ttl_ / 8) {
    view_ = cache_.catalog(catalog_, ttl_);
    if (!view_) {
      static const auto empty = std::make_shared<const cache::FetchedCatalog>();
      view_ = empty;
    }
    view_version_ = version;
    view_checked_ = now;
  }
  return view_;
}

void CacheObserver::want(const cache::ReadJudgement& j) {
  wanted_relations_.insert(j.missing_relations.begin(), j.missing_relations.end());
  wanted_routines_.insert(j.missing_routines.begin(), j.missing_routines.end());
}

CacheObserver::~CacheObserver() {
  if (window_seq_) cache_.close_window(catalog_.database);
  for (; shared_windows_ > 0; --shared_windows_) shared_->close_window(database_);
}

void CacheObserver::close_windows() {
  if (window_seq_) {
    window_seq_ = 0;
    cache_.close_window(catalog_.database);
  }
  for (; shared_windows_ > 0; --shared_windows_) shared_->close_window(database_);
}

bool CacheObserver::opens_window(std::span<const ClientMessage> messages, uint32_t from) {
  for (size_t i = from; i < messages.size(); ++i) {
    const AnalysisPtr& a = messages[i].analysis;
    if (a && !a->text.empty() && memo_.get(a->text).access->commits_inside) return true;
  }
  return false;
}

CacheObserver::Lookup CacheObserver::lookup(std::string_view text, cache::CacheKey key, Shape shape, bool join) {
  candidate_.reset();
  if (!stats_) return look(text, std::move(key), shape, join);
  const auto started = std::chrono::steady_clock::now();
  const uint64_t key_hash = key.hash;
  Lookup out = look(text, std::move(key), shape, join);
  stats_->lookup_seconds.observe(std::chrono::steady_clock::now() - started);
  if (out.hit) {
    note_hit(text, key_hash, shape);
    stats_->hits.fetch_add(1, std::memory_order_relaxed);
  } else if (armed_ && !out.shared) {   // with a shared ask, shared_answered() counts
    stats_->misses.fetch_add(1, std::memory_order_relaxed);
  }
  return out;
}

namespace {

bool same_versions(const cache::ReadSet& a, const cache::ReadSet& b) {
  if (a.database != b.database || a.epoch != b.epoch || a.tables.size() != b.tables.size()) return false;
  for (size_t i = 0; i < a.tables.size(); ++i) {
    if (a.tables[i].table != b.tables[i].table || a.tables[i].generation != b.tables[i].generation) return false;
  }
  return true;
}

// CACHE FLUSH QUERY ran here after `filled_at_unix_ms` (by the filler's clock: a second of
// slack for clocks of other machines that run ahead).
bool flushed_here(const CacheTextPolicy& policy, uint64_t filled_at_unix_ms) {
  constexpr uint64_t kClockSlackMs = 1000;
  if (!policy.stats) return false;
  const uint64_t flushed = policy.stats->flushed_at_unix_ms.load(std::memory_order_acquire);
  return flushed != 0 && filled_at_unix_ms <= flushed + kClockSlackMs;
}

}  // namespace

std::shared_ptr<const std::vector<std::byte>> CacheObserver::shared_answered(const SharedTier::Check& check) {
  std::optional<cache::Hit> candidate = std::move(candidate_);
  candidate_.reset();
  if (!armed_) return nullptr;
  auto& counters = cache_.counters();
  CacheTextPolicy& policy = policy_.text(memo_.get(armed_->text).policy, armed_->text);
  const auto ttl = std::chrono::duration_cast<cache::Ttl>(armed_->ttl);
  const auto count = [&](bool hit) {
    if (hit) policy_.hit(policy, ttl);
    else policy_.miss(policy, ttl);
    if (stats_) (hit ? stats_->hits : stats_->misses).fetch_add(1, std::memory_order_relaxed);
  };
  if (!check.ok) {   // Redis did not answer: nothing can be proven fresh, nothing is stored
    count(false);
    return nullptr;
  }
  if (check.window_open) {   // another instance's CALL or DO may have committed: no hit, no fill
    count(false);
    armed_.reset();
    return nullptr;
  }
  armed_->start.shared = check.now;
  armed_->shared_read = true;
  if (candidate) {
    if (same_versions(candidate->shared, check.now)) {
      counters.shared_confirmed_hits.fetch_add(1, std::memory_order_relaxed);
      count(true);
      note_hit(armed_->text, armed_->key.hash, armed_->shape);
      armed_.reset();
      return std::move(candidate->response);
    }
    counters.shared_stale.fetch_add(1, std::memory_order_relaxed);
  }
  if (check.value) {
    cache::DecodedSharedValue decoded;
    const auto status = cache::decode_shared_value(*check.value, cache::key_digest(armed_->key.bytes),
                                                   cache_.store().max_entry_charge() * 255, decoded);
    const uint64_t now_unix = unix_ms_now();
    if (status == cache::SharedValueStatus::kUsable && !decoded.meta.expired(now_unix)) {
      if (same_versions(decoded.meta.reads, check.now) && !flushed_here(policy, decoded.meta.filled_at_unix_ms)) {
        // Kept in memory too, for what is left of its TTL, under the versions it was read under.
        const auto left = std::chrono::milliseconds(decoded.meta.filled_at_unix_ms + decoded.meta.ttl_ms - now_unix);
        auto answer = std::make_shared<const std::vector<std::byte>>(std::move(decoded.raw));
        cache::Fill fill;
        fill.key = armed_->key.bytes;
        fill.key_hash = armed_->key.hash;
        fill.packed = std::make_shared<const cache::StoredResponse>(std::move(decoded.response));
        fill.fingerprint = armed_->fingerprint;
        fill.ttl = std::min<std::chrono::steady_clock::duration>(left, armed_->ttl);
        fill.start = std::move(armed_->start);
        fill.start.shared = decoded.meta.reads;
        (void)cache_.store().insert(std::move(fill), std::chrono::steady_clock::now(), cache_.generations());
        counters.shared_hits.fetch_add(1, std::memory_order_relaxed);
        if (stats_) stats_->redis_hits.fetch_add(1, std::memory_order_relaxed);
        count(true);
        note_hit(armed_->text, armed_->key.hash, armed_->shape);
        armed_.reset();
        return answer;
      }
      counters.shared_stale.fetch_add(1, std::memory_order_relaxed);
    } else if (status != cache::SharedValueStatus::kUsable) {
      log_debug("query cache: Redis value not usable (", cache::to_string(status), ")");
    }
  }
  count(false);
  return nullptr;
}

CacheObserver::Lookup CacheObserver::look(std::string_view text, cache::CacheKey key, Shape shape, bool join) {
  armed_.reset();
  auto& counters = cache_.counters();
  if (cache_.window_open(database_)) return {};   // a CALL or DO is running on the database
  AccessMemo::Entry& memo = memo_.get(text);
  CacheTextPolicy& policy = policy_.text(memo.policy, text);
  if (!memo.access->cacheable_text) policy_.refused(policy, memo.access->not_cacheable);
  if (!memo.access->cacheable_text || policy_.refuses(policy)) {   // refuses: a nocache hint, CACHE DISABLE
    counters.not_cacheable.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  const auto& catalog = view();
  if (memo.judged_under != catalog) {   // judged once per text and view
    memo.judgement = cache::judge_read(*memo.access, *catalog);
    memo.judged_under = catalog;
  }
  const cache::ReadJudgement& j = memo.judgement;
  if (j.verdict == cache::Verdict::kPending) {
    want(j);
    counters.pending.fetch_add(1, std::memory_order_relaxed);
    // A text nobody has fetched facts for yet: one session fetches them and fills, the others
    // wait for that (a burst of the same new query would otherwise all go to the server).
    if (join) {
      std::shared_ptr<QueryCache::Ticket> ticket;
      if (auto flight = cache_.join_flight(key.bytes, ticket)) return {nullptr, std::move(flight), std::nullopt};
      lead_ = std::move(ticket);
    }
    log_debug("query cache: catalog facts pending: ", text.substr(0, 80));
    return {};
  }
  if (j.verdict != cache::Verdict::kCacheable) {
    counters.not_cacheable.fetch_add(1, std::memory_order_relaxed);
    log_debug("query cache: not cached (", j.reason, "): ", text.substr(0, 80));
    policy_.refused(policy, j.reason);
    return {};
  }
  const CachePolicy::Decision decision = policy_.decide(policy, j, catalog);   // rules and hint: the TTL, or none
  if (decision.missing) {   // a table rule's name is not fetched yet: fetched as the read's own are
    wanted_relations_.insert(decision.missing->begin(), decision.missing->end());
    counters.pending.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  if (!decision.ttl) {
    counters.not_cacheable.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  auto& generations = cache_.generations();
  const auto now = std::chrono::steady_clock::now();
  // With the Redis tier, the lease (shared_lease.h) is read before the memory lookup, so the
  // bumps it promises have been applied are seen by the generations the lookup reads.
  SharedLease* lease = shared_ ? cache_.lease() : nullptr;
  const cache::LeaseBook::Lease held = lease ? lease->book().lease() : cache::LeaseBook::Lease{};
  std::optional<cache::Hit> candidate = cache_.store().lookup(key.bytes, key.hash, now, generations);
  if (candidate && !shared_) {
    policy_.hit(policy, *decision.ttl);
    return {candidate->response, nullptr, std::nullopt};
  }
  if (candidate && lease && lease->book().serves(held, database_, candidate->filled_at, now)) {
    // Every write acknowledged to its client before now has been applied here (or its commit
    // is still waiting): fresh without asking Redis.
    counters.shared_lease_hits.fetch_add(1, std::memory_order_relaxed);
    policy_.hit(policy, *decision.ttl);
    return {candidate->response, nullptr, std::nullopt};
  }
  // Single flight: one session sends the query, the others wait for its fill.
  std::shared_ptr<QueryCache::Ticket> ticket;
  if (lead_ && lead_->key == key.bytes) {
    ticket = std::move(lead_);   // this session already leads the key's flight (facts were pending)
  } else if (join) {
    if (auto flight = cache_.join_flight(key.bytes, ticket)) return {nullptr, std::move(flight), std::nullopt};
  }
  std::vector<cache::TableId> tables;
  for (cache::Oid oid : j.depends_on) tables.push_back(QueryCache::table_id(database_, oid));
  armed_ = Armed{std::string(text), shape, std::move(key), cache_.store().begin_fill(generations, database_, tables, now),
                 std::move(ticket), *decision.ttl, policy.fingerprint, now, 0, {}, false};
  if (shared_) {
    // Asked of Redis first: the shared versions now (which confirm a memory candidate or a
    // value stored there, and are what a fill is read under), and the stored value when memory
    // has none. Even a memory candidate waits: another instance may have written since.
    SharedAsk ask{.database = database_, .tables = std::move(tables), .answer_key = {}};
    armed_->answer_key = cache::answer_key_name(shared_->prefix(), database_, armed_->key.bytes);
    if (!candidate) ask.answer_key = armed_->answer_key;
    armed_->armed_unix_ms = unix_ms_now();
    candidate_ = std::move(candidate);
    return {nullptr, nullptr, std::move(ask)};
  }
  log_debug("query cache: miss: ", text.substr(0, 80));
  policy_.miss(policy, *decision.ttl);
  return {};
}

void CacheObserver::note_write(AccessMemo::Entry& memo) {
  const cache::AccessAnalysis& a = *memo.access;
  current_.drop_facts = current_.drop_facts || a.schema_may_change;
  if (current_.whole_database) return;
  if (resolution_changed_ && (!a.writes.empty() || a.writes_unknown || !a.routines.empty() || !a.reads.empty())) {
    // Names after a SET search_path/ROLE in this transaction resolve in a way the facts do not know.
    current_.whole_database = true;
    return;
  }
  const auto& catalog = view();
  if (memo.write_judged_under != catalog) {   // judged once per text and view, as reads are
    memo.write_judgement = cache::judge_write(a, *catalog);
    memo.write_judged_under = catalog;
  }
  const cache::WriteJudgement& w = memo.write_judgement;
  if (w.whole_database) {
    current_.whole_database = true;
    // Fetch what was missing, so the next such write can be narrower.
    for (const auto* names : {&a.writes, &a.reads}) {
      for (const auto& r : *names)
        if (!catalog->relation(r)) wanted_relations_.insert(r);
    }
    for (const auto& r : a.routines) {
      if (!catalog->routine(r)) wanted_routines_.insert(r);
    }
    return;
  }
  current_.tables.insert(current_.tables.end(), w.tables.begin(), w.tables.end());
}

void CacheObserver::on_start(const StatementStart& s) {
  // The armed fill is for this statement only: a lone simple Query with the text looked up.
  std::optional<Armed> armed = std::move(armed_);
  armed_.reset();
  fill_.reset();
  lead_.reset();   // a flight led but not armed (the facts said no): land it
  if (s.text.empty()) {
    current_.whole_database = true;   // an Execute of a statement pgrelay never saw: it may write anything
    return;
  }
  AccessMemo::Entry& memo = memo_.get(s.text);
  const auto access = memo.access;
  // Every statement: a read may write too (a volatile function, directly or in a view it reads).
  note_write(memo);
  if (access->commits) {
    // What was sent before this COMMIT becomes visible at its CommandComplete (commit_completed),
    // what comes after it belongs to the next transaction (COMMIT AND CHAIN, a multi-statement Query).
    committing_.push_back(std::move(current_));
    current_ = {};
  }
  if (access->commits_inside && !window_seq_) {
    window_seq_ = s.seq;
    cache_.open_window(catalog_.database);
  }
  resolution_changed_ = resolution_changed_ || access->changes_name_resolution;
  resolution_changed_ever_ = resolution_changed_ever_ || access->changes_name_resolution;
  if (armed && s.extended == armed->shape.extended && s.index == 0 && s.tx_status == 'I' &&
      (armed->text == s.text || (s.analysis && armed->text == s.analysis->text))) {   // looked up by its whole text
    fill_ = Filling{s.seq, std::move(*armed), {}};
  }
}

void CacheObserver::on_message(uint64_t seq, char type, protocol::Bytes) {
  // A notice or a setting change in the middle of an answer is not part of what a hit replays.
  if (fill_ && fill_->seq == seq && (type == be::kNoticeResponse || type == be::kParameterStatus)) {
    fill_.reset();
    cache_.counters().fills_abandoned.fetch_add(1, std::memory_order_relaxed);
  }
}

void CacheObserver::on_response_bytes(uint64_t seq, protocol::Bytes bytes) {
  if (!fill_ || fill_->seq != seq) return;
  if (fill_->response.size() + bytes.size() > cache_.store().max_entry_charge()) {
    fill_.reset();   // too large to keep: stop copying
    cache_.counters().fills_abandoned.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  fill_->response.insert(fill_->response.end(), bytes.begin(), bytes.end());
}

void CacheObserver::on_end(const StatementEnd& e) {
  if (window_seq_ == e.seq) close_windows();
  if (!fill_ || fill_->seq != e.seq) return;
  Filling done = std::move(*fill_);
  fill_.reset();
  std::vector<std::byte> answer;
  if (e.outcome != StatementOutcome::kCompleted || !canonical_answer(done.response, done.armed.shape.describe, answer)) {
    cache_.counters().fills_abandoned.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (shared_ && !done.armed.shared_read) {   // no shared versions to check it by: not kept
    cache_.counters().fills_abandoned.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  cache::Fill fill;
  fill.key = done.armed.key.bytes;
  fill.key_hash = done.armed.key.hash;
  fill.response = answer;
  fill.fingerprint = done.armed.fingerprint;
  fill.ttl = done.armed.ttl;
  fill.start = std::move(done.armed.start);
  std::optional<cache::SharedValueMeta> meta;
  if (shared_) {
    // Compressed once, for both tiers.
    fill.packed = std::make_shared<const cache::StoredResponse>(cache::pack_response(answer, cache_.store().compress_threshold()));
    meta = cache::SharedValueMeta{.key = cache::key_digest(done.armed.key.bytes),
                                  .fingerprint = done.armed.fingerprint,
                                  .filled_at_unix_ms = done.armed.armed_unix_ms,
                                  .ttl_ms = uint32_t(std::chrono::duration_cast<std::chrono::milliseconds>(done.armed.ttl).count()),
                                  .reads = fill.start.shared};
  }
  const auto packed = fill.packed;
  const auto now = std::chrono::steady_clock::now();
  const cache::InsertOutcome outcome = cache_.store().insert(std::move(fill), now, cache_.generations());
  if (outcome != cache::InsertOutcome::kStored) {
    log_debug("query cache: answer not stored (", int(outcome), ")");
    return;
  }
  if (stats_) stats_->fill_seconds.observe(now - done.armed.armed_at);
  if (meta) {
    // Kept in memory means no write here raced it: shared for what is left of its TTL.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(done.armed.ttl - (now - done.armed.armed_at));
    shared_->store(std::move(done.armed.answer_key), cache::encode_shared_value(*meta, *packed), left);
  }
}

void CacheObserver::transaction_ended() {
  // A window whose end was never seen (skipped, abandoned), or a shared one opened for a
  // statement that never started: the transaction is over anyway.
  close_windows();
  for (Writes& w : committing_) bump(w);
  committing_.clear();
  bump(current_);
  current_ = {};
  resolution_changed_ = untracked_settings_ && resolution_changed_ever_;
}

void CacheObserver::commit_completed() {
  if (committing_.empty()) return;   // a COMMIT pgrelay did not see sent (an unknown Execute): 'I' bumps all
  bump(committing_.front());
  committing_.pop_front();
}

void CacheObserver::bump(Writes& w) {
  if (w.whole_database) {
    cache_.invalidate_database(catalog_.database, w.drop_facts);
    if (shared_) shared_bumps_.push_back({.whole_database = true, .schema = w.drop_facts, .tables = {}});
  } else if (!w.tables.empty()) {
    std::sort(w.tables.begin(), w.tables.end());
    w.tables.erase(std::unique(w.tables.begin(), w.tables.end()), w.tables.end());
    SharedBump shared{};
    for (cache::Oid oid : w.tables) {
      const cache::TableId id = QueryCache::table_id(database_, oid);
      cache_.generations().bump(id);
      if (shared_) shared.tables.push_back(id);
    }
    cache_.counters().table_bumps.fetch_add(w.tables.size(), std::memory_order_relaxed);
    if (shared_) shared_bumps_.push_back(std::move(shared));
  }
  w = {};
}

std::vector<cache::RelationName> CacheObserver::take_wanted_relations() {
  std::vector<cache::RelationName> out(wanted_relations_.begin(), wanted_relations_.end());
  wanted_relations_.clear();
  return out;
}

std::vector<cache::RoutineName> CacheObserver::take_wanted_routines() {
  std::vector<cache::RoutineName> out(wanted_routines_.begin(), wanted_routines_.end());
  wanted_routines_.clear();
  return out;
}

}  // namespace pgrelay::proxy
