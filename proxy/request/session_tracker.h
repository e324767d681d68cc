// What one client has left on its server connection beyond its transactions.
//
// In transaction and statement mode a client's session must survive moving between server
// connections and must never reach another client. The tracker reads the statements the client
// sends (analyzer::SessionEffects) and the server's answers, and keeps:
//   - settings to replay: a non-LOCAL SET of a parameter the server does not report (reported
//     ones travel through ParameterStatus already) is remembered as the SQL the client wrote,
//     and applied to every server connection the client gets, so a SET needs no pin;
//   - pins: state pgrelay cannot move (SET ROLE, SET SESSION AUTHORIZATION, temporary objects,
//     SQL PREPARE, WITH HOLD cursors, LISTEN, LOAD, session advisory locks, settings whose value
//     the text does not show). While any is held the client keeps its server connection.
// Additions are counted when the statement is sent (pinning early costs nothing); clearing
// statements (RESET, DISCARD, UNLISTEN) and SETs take hold only when their transaction commits,
// as they do on the server: an error, ROLLBACK (or ABORT, or AND CHAIN) drops them, ROLLBACK TO
// SAVEPOINT drops those made since the savepoint. DEALLOCATE, CLOSE and the advisory unlocks are
// not transactional in PostgreSQL and hold even when their transaction rolls back. Limit: the
// order of a transaction's statements is the order they were sent, and an error anywhere in it
// drops all its effects, except what a completed COMMIT settled (on_committed); a COMMIT sent
// after the error arrived counts as the ROLLBACK it is. Limit: a COMMIT pipelined behind a
// statement that fails (sent before the error arrived) still counts as a commit marker until the
// next ReadyForQuery 'I'; with AND CHAIN, a later COMMIT of the chained transaction settles the
// failed part as committed.
//
// Pure: no I/O. Used from the client's own thread only.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "analyzer/session_state.h"
#include "proxy/base/startup_params.h"
#include "proxy/request/statement_analysis.h"

namespace pgrelay::proxy {

using ParamMap = std::map<std::string, std::string>;

class SessionTracker {
 public:
  // The first state-pinning effect of `effects`, for the reject policy and log lines; nullopt
  // when they only change settings pgrelay replays, or clear state.
  static std::optional<analyzer::Effect> first_pinning(const analyzer::SessionEffects& effects);

  // A statement the client sent (simple Query or Parse) with these effects; `reported` is the
  // ParameterStatus set the client sees (a SET of one of those is not remembered: it travels
  // with ParameterStatus). Returns true when it made the client pinned (it was not before).
  // `controls` are the text's transaction-control statements (StatementAnalysis::tx_controls).
  bool on_sent(const analyzer::SessionEffects& effects, const ParamMap& reported,
               std::span<const TxControl> controls = {});
  // The server answered with ErrorResponse: the current transaction fails.
  void on_error() { failed_ = true; }
  // A COMMIT (or PREPARE TRANSACTION) completed: what was sent before the first commit still
  // waiting has taken hold on the server, whatever happens to the transaction after it (COMMIT
  // AND CHAIN opens the next one at once; a multi-statement Query may fail further on). It is
  // settled now and applied at the next ReadyForQuery 'I'.
  void on_committed();

  struct Settled {
    bool unpinned = false;                  // the last pin was cleared
    bool sets_changed = false;              // sets() is a new map (a SET or RESET committed)
    bool reset_all = false;                 // RESET ALL / DISCARD ALL committed
    std::vector<std::string> reset_names;   // RESET name committed (lower case)
  };
  // ReadyForQuery with `tx_status`. At 'I' the transaction's pending effects take hold (or are
  // dropped, when it failed).
  Settled on_ready(char tx_status);
  // Nothing waits for a ReadyForQuery: the next on_ready() clears no setting.
  bool settles_nothing() const { return pending_.empty() && committed_.empty(); }

  bool pinned() const;
  // A statement the client prepared with SQL PREPARE (not the protocol's Parse) under `name`.
  bool sql_prepared(const std::string& name) const { return prepared_.count(name) != 0; }
  // Why, for logs and the admin console: "SET ROLE", "LISTEN", ...; "" when not pinned.
  std::string pin_reason() const;
  // Held state that DISCARD ALL cannot undo (LOAD, unanalyzed statements): the connection must
  // be closed rather than reset when the client leaves.
  bool needs_close() const { return loaded_ || unanalyzed_; }

  // After code pgrelay cannot see into (DO, CALL) has run and its transaction ended: the
  // server's own list of the session's settings (pg_settings with source 'session') is the
  // truth, and replaces the remembered SETs, less the parameters in `reported` (they travel with
  // ParameterStatus, as in on_sent). True when the remembered SETs changed.
  bool adopt_settings(SessionSets truth, const ParamMap& reported);

  // The remembered settings, name -> SQL value as written; nullptr when none. Immutable and
  // shared: a server connection remembers which map it carries by pointer.
  const std::shared_ptr<const SessionSets>& sets() const { return sets_; }

 private:
  void add_pin(const analyzer::Effect& e);
  void control(const TxControl& c);
  // The pending effects that survive the transaction's ROLLBACKs and ROLLBACK TOs, in order.
  // Of the first `effects` pending effects and the first `markers` markers.
  std::vector<analyzer::Effect> surviving(size_t effects, size_t markers) const;
  void commit(const std::vector<analyzer::Effect>& effects, Settled& out);

  std::shared_ptr<const SessionSets> sets_;
  std::vector<analyzer::Effect> pending_;     // clears and SETs waiting for their transaction
  // Transaction control between them: each applies before pending_[position].
  struct Marker {
    size_t position;
    TxControl control;
  };
  std::vector<Marker> markers_;
  std::vector<analyzer::Effect> committed_;   // settled by on_committed, applied at 'I'
  bool failed_ = false;

  // Pins.
  bool role_ = false, session_authorization_ = false, temp_ = false, advisory_ = false;
  bool loaded_ = false, unanalyzed_ = false;
  std::set<std::string> opaque_settings_;     // SET ... FROM CURRENT, set_config with non-literals
  std::set<std::string> prepared_, cursors_, channels_;
};

}  // namespace pgrelay::proxy
