// NPlusOneObserver: one session's statements fed to an N+1 detector (analyzer/n_plus_one.h).
//
// Attached with the QueryObserver when query_stats is on and n_plus_one_threshold > 0. For each
// statement it gives the detector the fingerprint, whether it is a read, whether it runs in a
// transaction block, and its parameter values: the constants of its text (psycopg2 and most
// ORMs inline them) with each $n taken from its Bind. For a read, the column names
// (RowDescription) and the values of its first rows (the DataRows the pump lets it glimpse)
// are the lineage the detector matches later parameters against. Nothing of this is done while
// the statement goes to the server: its start is given to the detector with its first message
// or its end (a fingerprint is a lexing pass). What the detector would not look at is not
// decoded: the values of a read whose pattern the unit already reported, the columns and rows
// once the unit remembers all the values it may. A detection goes to the
// process-wide NPlusOneRegistry (SHOW N_PLUS_ONE, metrics) and to the log, once per pattern per
// n_plus_one_log_interval.
//
// Request/response loops are what an N+1 looks like, so a statement sent while an earlier one
// is still unanswered (pipelining, the second statement of a multi-statement Query) is not fed.
// Session thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzer/n_plus_one.h"
#include "conf/config.h"
#include "proxy/request/statement_events.h"
#include "proxy/session/query_observer.h"

namespace pgrelay::proxy {

class NPlusOneObserver : public StatementObserver {
 public:
  // `texts`: the worker's query statistics, where the QueryObserver beside this one records each
  // statement's normalized text; a detection's source statement is named from there.
  NPlusOneObserver(analyzer::NPlusOneRegistry& registry, const analyzer::QueryStatsShard& texts, QueryOrigin origin,
                   const conf::Config& config);

  void on_start(const StatementStart& s) override;
  void on_message(uint64_t seq, char type, protocol::Bytes body) override;
  void on_end(const StatementEnd& e) override;
  void on_ready(char tx_status) override;
  bool wants_response_bytes() const override { return false; }

  // The values of statement `index` of `a` as parameters: its constants, each $n from `bind`.
  // Appends to `out` (views into `a` and `bind`, or into `owned`). Empty without constants.
  static void parameters(const StatementAnalysis& a, uint32_t index, protocol::Bytes bind,
                         std::vector<std::string>& owned, std::vector<std::string_view>& out);

 private:
  void report(const analyzer::NPlusOneDetection& d, const StatementEnd& e);
  // Gives the detector the current statement's start, once: at its first message (a read's
  // rows must follow it) or at its end, after its answer arrived.
  void feed_start();

  analyzer::NPlusOneRegistry& registry_;
  const analyzer::QueryStatsShard& texts_;
  const QueryOrigin origin_;
  const conf::Config& config_;
  analyzer::NPlusOneDetector detector_;
  uint64_t current_ = 0;                  // the statement being fed (0: none)
  bool current_read_ = false;
  bool current_started_ = false;          // feed_start() done
  AnalysisPtr current_analysis_;
  uint32_t current_index_ = 0;
  char current_tx_ = 'I';                 // the status it was sent in
  EventClock::time_point current_sent_{};
  std::string current_bind_;              // a read's Bind body, kept past on_start (capacity reused)
  char tx_status_ = 'I';                  // from the last ReadyForQuery
};

}  // namespace pgrelay::proxy
