// What a statement text is, analyzed once per distinct text and shared by everything that asks.
//
// A client sends the same few texts over and over (a Query, or the query of a Parse); lexing and
// classifying each of them every time would be the hot path's biggest cost. AnalysisCache keeps
// the analysis of recent texts keyed by an XXH3-64 hash of the text (and the lexing option that
// changes its meaning), compares the text itself on a hit, and evicts the least recently used
// entry beyond its capacity. A text is kept from its second sighting on (a small table of
// hashes seen once is the doorkeeper, as in TinyLFU): texts with inline constants, most of
// them seen once (pgbench's, an ORM's without bind parameters), do not churn the cache. A
// named prepared statement carries its analysis from Parse to every Execute (RequestReader),
// so an Execute costs no lookup at all.
//
// The analysis is the session-effects classification, each statement's class and, when the
// query analyzer is on, each statement's fingerprint (analyzer/fingerprint.h), made on its
// first use: one lexing pass per distinct text, not one per execution. The cache's
// cacheability check joins them here.
//
// Pure: no I/O, no clock. One cache per worker thread (Worker owns it); an analysis is
// immutable once made, but for its fingerprints, filled once (fill_fingerprints_once).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <thread>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "analyzer/fingerprint.h"
#include "analyzer/lexer.h"
#include "analyzer/session_state.h"

namespace pgrelay::proxy {

// A transaction-control statement, for SessionTracker: which of a transaction's SETs survive.
struct TxControl {
  enum class Kind : uint8_t {
    kBegin,        // BEGIN, START TRANSACTION
    kCommit,       // COMMIT, END, PREPARE TRANSACTION
    kRollback,     // ROLLBACK, ABORT
    kSavepoint,    // SAVEPOINT name
    kRollbackTo,   // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name
    kRelease,      // RELEASE [SAVEPOINT] name
  };
  Kind kind = Kind::kBegin;
  uint32_t statement = 0;   // its index in the text
  bool chain = false;       // COMMIT/ROLLBACK AND CHAIN: a new transaction begins at once
  std::string savepoint;    // as PostgreSQL names it (unquoted names folded to lower case)

  bool operator==(const TxControl&) const = default;
};

struct StatementAnalysis {
  // The text as the client sent it: a simple Query's whole text or one Parse's query. Cut at
  // AnalysisCache::kMaxKeptText bytes (text_truncated) when longer; the analysis saw all of it.
  std::string text;
  bool text_truncated = false;
  uint64_t hash = 0;                    // XXH3-64 of the whole text
  analyzer::SessionEffects effects;     // session effects, and the class of each statement
  // Each statement of the text, as views into `text` (a Query may hold several; ";;" none).
  // Empty when the text was truncated: then statement_text() answers from `text`.
  std::vector<std::string_view> statements;
  // The transaction block the text leaves open or closed, read from its transaction-control
  // statements in order: BEGIN/START TRANSACTION open one, COMMIT/END/ROLLBACK/ABORT (without
  // AND CHAIN) close it. Statement pooling refuses a text that leaves one open.
  bool opens_transaction = false;
  // Its transaction-control statements, in order (COMMIT PREPARED and ROLLBACK PREPARED, which
  // end another transaction, are not among them).
  std::vector<TxControl> tx_controls;
  // A statement of it changes the schema (CREATE, ALTER, DROP, ...): prepared plans may go stale.
  bool ddl = false;
  // A statement of it runs code pgrelay cannot see into (DO, CALL), which may SET anything: the
  // session asks the server what changed before the connection moves on.
  bool runs_code = false;
  // Sequence state: a statement may advance a sequence (a write, DDL, DO/CALL, an explicit
  // nextval/setval: an INSERT's DEFAULT is not in the text, so every write counts), or reads
  // what the session's last nextval left (currval, lastval).
  bool advances_sequences = false;
  bool reads_sequences = false;
  // Its one statement's class came from the pre-scan (analyzer::effect_free_class): no session
  // effect, whatever its constants. AnalysisCache analyzes other texts of its shape like it.
  bool prescanned = false;
  // Statement i's fingerprint, or null when this analysis carries none (the query analyzer was
  // off when it was made). Computed for all statements on first use: that is by the statement
  // observers, after the statement's answer went to the client, so the request's way to its
  // server never waits for it. The analysis belongs to one worker's sessions (AnalysisCache is
  // per worker), but the first use is made thread-safe anyway.
  const analyzer::Fingerprint* fingerprint(size_t i) const;
  // A key for what does not depend on the statement's constants (the lanes' and read routing's
  // verdicts, ClientSession::judge_plain_read): its fingerprint's hash. Without fingerprints
  // (query_stats off) a hash-only one, made on first use and kept with the analysis. None for a
  // text of several statements, or one cut short without fingerprints.
  std::optional<uint64_t> constant_free_key() const;
  mutable std::atomic<uint64_t> made_key{0};   // constant_free_key() without fingerprints; 0: not made yet
  // The shape key (analyzer/shape_key.h) of its text, when that is one statement: finer than
  // constant_free_key() and made in one pass over the bytes, so the verdicts are found by it
  // before the statement is sent, and the fingerprint is made after. Made with the analysis by
  // AnalysisCache, else on first use, and kept. None for several statements, a text cut short,
  // or one the shape key declines.
  std::optional<uint64_t> shape_key() const;
  static constexpr uint64_t kNoShape = 1;       // made_shape: declined
  mutable std::atomic<uint64_t> made_shape{0};  // 0: not made yet
  // Keeps `made` (the shape key of its text, nullopt: declined) as made_shape; returns what it kept.
  uint64_t keep_shape(std::optional<uint64_t> made) const;
  // Where the shape pass that made made_shape found the text's constants (offsets in `text`),
  // when AnalysisCache kept them for a read whose fingerprint lists its constants: its
  // fingerprint takes them rather than make that pass again (fingerprint_all). Taken once.
  mutable std::optional<std::vector<analyzer::ConstantSpan>> shape_blanks;

  // How fingerprints are made (set by analyze_statement; length 0: none).
  size_t fingerprint_length = 0;
  bool fingerprint_constants = false;   // a read's fingerprint lists where its constants are
  analyzer::LexOptions lex_options;
  // Filled once, by the first fingerprint() (or at once by analyze_statement for a truncated
  // text, whose later statements are not kept), through fill_fingerprints_once().
  mutable std::vector<analyzer::Fingerprint> fingerprints;
  // Runs `fill` unless fingerprints are filled already; a second thread arriving meanwhile
  // waits for the first. Not std::call_once: glibc's pthread_once ends every first call with a
  // futex wake, and most analyses (a text with its literals inline) see exactly one call.
  template <class F>
  void fill_fingerprints_once(F&& fill) const;
  enum FillState : uint8_t { kUnfilled, kFilling, kFilled };
  mutable std::atomic<uint8_t> fingerprint_state{kUnfilled};

  size_t statement_count() const { return effects.statement_count(); }
  // The text of statement `i` (0-based); the whole text when it is not known separately.
  std::string_view statement_text(size_t i) const {
    return i < statements.size() ? statements[i] : std::string_view(text);
  }
};

template <class F>
void StatementAnalysis::fill_fingerprints_once(F&& fill) const {
  uint8_t state = fingerprint_state.load(std::memory_order_acquire);
  if (state == kFilled) return;
  if (state == kUnfilled && fingerprint_state.compare_exchange_strong(state, kFilling, std::memory_order_acquire)) {
    try {
      fill();
    } catch (...) {
      fingerprint_state.store(kUnfilled, std::memory_order_release);
      throw;
    }
    fingerprint_state.store(kFilled, std::memory_order_release);
    return;
  }
  while (fingerprint_state.load(std::memory_order_acquire) != kFilled) std::this_thread::yield();
}

using AnalysisPtr = std::shared_ptr<const StatementAnalysis>;

// Statements of this class may call nextval() where the text does not show it (a column's
// DEFAULT, a trigger, a procedure).
inline bool advances_sequences(analyzer::StatementClass c) {
  return c == analyzer::StatementClass::kWrite || c == analyzer::StatementClass::kOther ||
         c == analyzer::StatementClass::kDdl;
}

// Analyzes `text` without memoizing (tests, benchmarks, texts too long to keep). With a
// `fingerprint_length`, each statement is fingerprinted too, its display text cut at that length,
// and with `constants` a read's fingerprint lists where its constants are (N+1 detection reads them).
AnalysisPtr analyze_statement(std::string_view text, const analyzer::LexOptions& options = {},
                              size_t fingerprint_length = 0, bool constants = false);

class AnalysisCache {
 public:
  static constexpr size_t kMaxKeptText = 16 * 1024;   // longer texts are analyzed but not kept

  // `fingerprint_length` > 0: analyses carry fingerprints (the query analyzer is on), with their
  // constants' places when `constants`.
  explicit AnalysisCache(size_t capacity = 2048, size_t fingerprint_length = 0, bool constants = false)
      : capacity_(capacity == 0 ? 1 : capacity), fingerprint_length_(fingerprint_length), constants_(constants) {}
  AnalysisCache(const AnalysisCache&) = delete;
  AnalysisCache& operator=(const AnalysisCache&) = delete;

  // The analysis of `text`, from the cache or made now (and kept, unless the text is longer than
  // kMaxKeptText).
  AnalysisPtr analyze(std::string_view text, const analyzer::LexOptions& options = {});

  static constexpr size_t kDoorkeeperSlots = 4096;
  // Shapes whose analysis a new text of theirs takes without classifying (their prescanned,
  // single-statement analyses); full, the table starts again empty.
  static constexpr size_t kMaxShapes = 1024;

  struct Stats {
    uint64_t hits = 0, misses = 0, evictions = 0;
    size_t entries = 0;
    uint64_t shaped = 0;   // misses analyzed like an earlier text of their shape
  };
  Stats stats() const { return {hits_, misses_, evictions_, index_.size(), shaped_}; }

 private:
  struct Entry {
    uint64_t key;
    AnalysisPtr analysis;
  };
  const size_t capacity_;
  const size_t fingerprint_length_;
  const bool constants_;
  std::list<Entry> lru_;                                           // front: most recently used
  std::unordered_multimap<uint64_t, std::list<Entry>::iterator> index_;
  std::vector<uint64_t> seen_once_;   // by key % kDoorkeeperSlots: a text missed once (lazily sized)
  std::unordered_map<uint64_t, AnalysisPtr> shapes_;   // by shape key (kMaxShapes)
  std::vector<analyzer::ConstantSpan> blanks_;          // scratch: the shape pass's constants
  uint64_t hits_ = 0, misses_ = 0, evictions_ = 0, shaped_ = 0;
};

}  // namespace pgrelay::proxy
