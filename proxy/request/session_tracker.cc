// What one client has left on its server connection beyond its transactions.
#include "proxy/request/session_tracker.h"

#include <algorithm>
#include <cstdint>

#include "proxy/base/startup_params.h"

namespace pgrelay::proxy {
namespace {

using analyzer::Effect;
using analyzer::EffectKind;

bool is_pinning(EffectKind k) {
  switch (k) {
    case EffectKind::kSetParameterFromCurrent: case EffectKind::kSetRole:
    case EffectKind::kSetSessionAuthorization: case EffectKind::kSetConfigNonLiteral:
    case EffectKind::kTempTable: case EffectKind::kTempObject: case EffectKind::kPrepare:
    case EffectKind::kHoldCursor: case EffectKind::kListen: case EffectKind::kLoad:
    case EffectKind::kAdvisoryLock: case EffectKind::kUnanalyzed:
      return true;
    default:
      return false;
  }
}

// Clears PostgreSQL does not undo with the transaction.
bool non_transactional(EffectKind k) {
  switch (k) {
    case EffectKind::kDeallocate: case EffectKind::kDeallocateAll: case EffectKind::kCloseCursor:
    case EffectKind::kCloseAllCursors: case EffectKind::kAdvisoryUnlock: case EffectKind::kAdvisoryUnlockAll:
      return true;
    default:
      return false;
  }
}

bool reported_by_server(const ParamMap& reported, const std::string& lower_name) {
  for (const auto& [name, value] : reported)
    if (analyzer::iequals(name, lower_name)) return true;
  return false;
}

}  // namespace

std::optional<Effect> SessionTracker::first_pinning(const analyzer::SessionEffects& effects) {
  for (const auto& e : effects.effects())
    if (is_pinning(e.kind)) return e;
  return std::nullopt;
}

bool SessionTracker::on_sent(const analyzer::SessionEffects& effects, const ParamMap& reported,
                             std::span<const TxControl> controls) {
  const bool was_pinned = pinned();
  size_t next_control = 0;
  auto controls_before = [&](uint32_t statement) {
    for (; next_control < controls.size() && controls[next_control].statement < statement; ++next_control)
      control(controls[next_control]);
  };
  for (const auto& e : effects.effects()) {
    controls_before(e.statement);
    if (e.kind == EffectKind::kSequenceAdvance || e.kind == EffectKind::kSequenceRead) {
      continue;   // the session's business (ClientSession::sequence_refusal), not a pin
    } else if (is_pinning(e.kind)) {
      add_pin(e);
    } else if (e.kind == EffectKind::kSetParameter) {
      if (!reported_by_server(reported, e.name)) pending_.push_back(e);
    } else {
      pending_.push_back(e);   // a clearing statement: takes hold at commit
    }
  }
  controls_before(UINT32_MAX);
  return !was_pinned && pinned();
}

void SessionTracker::control(const TxControl& sent) {
  TxControl c = sent;
  // A COMMIT (AND CHAIN) sent after the error arrived ends the failed transaction as ROLLBACK does.
  if (c.kind == TxControl::Kind::kCommit && failed_) c.kind = TxControl::Kind::kRollback;
  // A rollback (to a savepoint) is sent after the error it recovers from: the transaction, or
  // what is left of it, goes on without one.
  if (c.kind == TxControl::Kind::kRollback || c.kind == TxControl::Kind::kRollbackTo) failed_ = false;
  if (c.kind == TxControl::Kind::kBegin) return;
  markers_.push_back({pending_.size(), std::move(c)});
}

void SessionTracker::on_committed() {
  auto end = std::find_if(markers_.begin(), markers_.end(),
                          [](const Marker& m) { return m.control.kind == TxControl::Kind::kCommit; });
  if (end == markers_.end()) return;   // a commit pgrelay did not see as one: settled at 'I'
  const size_t effects = end->position;
  const size_t markers = size_t(end - markers_.begin()) + 1;
  for (auto& e : surviving(effects, markers)) committed_.push_back(std::move(e));
  pending_.erase(pending_.begin(), pending_.begin() + ptrdiff_t(effects));
  markers_.erase(markers_.begin(), markers_.begin() + ptrdiff_t(markers));
  for (auto& m : markers_) m.position -= effects;
  failed_ = false;   // the transaction that failed, if any, was an earlier one
}

std::vector<Effect> SessionTracker::surviving(size_t effects, size_t markers) const {
  std::vector<Effect> kept;        // committed, or of the transaction still open
  std::vector<Effect> undoable;    // since the last commit: what a rollback drops
  std::vector<std::pair<std::string, size_t>> savepoints;   // name -> undoable.size() when set
  auto apply = [&](const TxControl& c) {
    using K = TxControl::Kind;
    switch (c.kind) {
      case K::kCommit:
        kept.insert(kept.end(), undoable.begin(), undoable.end());
        undoable.clear();
        savepoints.clear();
        break;
      case K::kRollback:
        for (const auto& e : undoable)
          if (non_transactional(e.kind)) kept.push_back(e);
        undoable.clear();
        savepoints.clear();
        break;
      case K::kSavepoint:
        savepoints.emplace_back(c.savepoint, undoable.size());
        break;
      case K::kRollbackTo:
      case K::kRelease: {
        // The latest savepoint of that name; ROLLBACK TO keeps it, RELEASE drops it (and later ones).
        auto it = std::find_if(savepoints.rbegin(), savepoints.rend(), [&](const auto& s) { return s.first == c.savepoint; });
        if (it == savepoints.rend()) break;   // no such savepoint: the server refuses it
        const size_t mark = it->second;
        savepoints.erase(it.base() - (c.kind == K::kRollbackTo ? 0 : 1), savepoints.end());
        if (c.kind == K::kRelease) break;
        for (size_t i = mark; i < undoable.size(); ++i)
          if (non_transactional(undoable[i].kind)) kept.push_back(undoable[i]);
        undoable.resize(mark);
        break;
      }
      case K::kBegin:
        break;
    }
  };
  size_t m = 0;
  for (size_t i = 0; i <= effects; ++i) {
    for (; m < markers && markers_[m].position == i; ++m) apply(markers_[m].control);
    if (i < effects) undoable.push_back(pending_[i]);
  }
  kept.insert(kept.end(), undoable.begin(), undoable.end());
  return kept;
}

void SessionTracker::add_pin(const Effect& e) {
  switch (e.kind) {
    case EffectKind::kSetRole: role_ = true; break;
    case EffectKind::kSetSessionAuthorization: session_authorization_ = true; break;
    case EffectKind::kSetParameterFromCurrent: case EffectKind::kSetConfigNonLiteral:
      opaque_settings_.insert(e.name);
      break;
    case EffectKind::kTempTable: case EffectKind::kTempObject: temp_ = true; break;
    case EffectKind::kPrepare: prepared_.insert(e.name); break;
    case EffectKind::kHoldCursor: cursors_.insert(e.name); break;
    case EffectKind::kListen: channels_.insert(e.name); break;
    case EffectKind::kLoad: loaded_ = true; break;
    case EffectKind::kAdvisoryLock: advisory_ = true; break;
    default: unanalyzed_ = true; break;
  }
}

SessionTracker::Settled SessionTracker::on_ready(char tx_status) {
  Settled out;
  if (tx_status != 'I') return out;   // still inside the transaction: wait for its end
  const bool was_pinned = pinned();
  std::vector<Effect> kept = std::move(committed_);
  if (!failed_) {
    for (auto& e : surviving(pending_.size(), markers_.size())) kept.push_back(std::move(e));
  } else {
    // The transaction failed: only what PostgreSQL does not undo holds.
    for (const auto& e : pending_)
      if (non_transactional(e.kind)) kept.push_back(e);
  }
  commit(kept, out);
  committed_.clear();
  pending_.clear();
  markers_.clear();
  failed_ = false;
  out.unpinned = was_pinned && !pinned();
  return out;
}

void SessionTracker::commit(const std::vector<Effect>& effects, Settled& out) {
  std::optional<SessionSets> sets;   // copied on first change: sets_ is shared with server connections
  auto edit = [&]() -> SessionSets& {
    if (!sets) sets = sets_ ? *sets_ : SessionSets{};
    return *sets;
  };
  for (const auto& e : effects) {
    switch (e.kind) {
      case EffectKind::kSetParameter:
        // set_config's value is replayed through set_config (a list stays a list); SET's as written.
        edit()[e.name] = e.via_set_config ? WantedValue{e.value, false} : WantedValue{e.value, true};
        break;
      case EffectKind::kResetParameter:
        edit().erase(e.name);
        opaque_settings_.erase(e.name);
        out.reset_names.push_back(e.name);
        break;
      case EffectKind::kDiscardAll:
        role_ = session_authorization_ = temp_ = advisory_ = false;
        prepared_.clear();
        cursors_.clear();
        channels_.clear();
        [[fallthrough]];
      case EffectKind::kResetAll:   // PostgreSQL's RESET ALL leaves the role alone
        edit().clear();
        opaque_settings_.clear();
        out.reset_all = true;
        break;
      case EffectKind::kResetRole: role_ = false; break;
      case EffectKind::kResetSessionAuthorization: session_authorization_ = false; break;
      case EffectKind::kDeallocate: prepared_.erase(e.name); break;
      case EffectKind::kDeallocateAll: prepared_.clear(); break;
      case EffectKind::kCloseCursor: cursors_.erase(e.name); break;
      case EffectKind::kCloseAllCursors: cursors_.clear(); break;
      case EffectKind::kUnlisten: channels_.erase(e.name); break;
      case EffectKind::kUnlistenAll: channels_.clear(); break;
      case EffectKind::kAdvisoryUnlockAll: advisory_ = false; break;
      case EffectKind::kDiscardTemp: temp_ = false; break;
      default: break;   // kAdvisoryUnlock (which lock is unknown), DISCARD PLANS/SEQUENCES
    }
  }
  if (!sets) return;
  sets_ = sets->empty() ? nullptr : std::make_shared<const SessionSets>(std::move(*sets));
  out.sets_changed = true;
}

bool SessionTracker::adopt_settings(SessionSets truth, const ParamMap& reported) {
  std::erase_if(truth, [&](const auto& entry) { return reported_by_server(reported, entry.first); });
  const SessionSets none;
  if (truth == (sets_ ? *sets_ : none)) return false;
  sets_ = truth.empty() ? nullptr : std::make_shared<const SessionSets>(std::move(truth));
  return true;
}

bool SessionTracker::pinned() const {
  return role_ || session_authorization_ || temp_ || advisory_ || loaded_ || unanalyzed_ ||
         !opaque_settings_.empty() || !prepared_.empty() || !cursors_.empty() || !channels_.empty();
}

std::string SessionTracker::pin_reason() const {
  auto name = [](EffectKind k) { return std::string(analyzer::feature_name(k)); };
  if (role_) return name(EffectKind::kSetRole);
  if (session_authorization_) return name(EffectKind::kSetSessionAuthorization);
  if (temp_) return name(EffectKind::kTempTable);
  if (!prepared_.empty()) return name(EffectKind::kPrepare);
  if (!cursors_.empty()) return name(EffectKind::kHoldCursor);
  if (!channels_.empty()) return name(EffectKind::kListen);
  if (advisory_) return name(EffectKind::kAdvisoryLock);
  if (!opaque_settings_.empty()) return name(EffectKind::kSetParameterFromCurrent);
  if (loaded_) return name(EffectKind::kLoad);
  if (unanalyzed_) return name(EffectKind::kUnanalyzed);
  return {};
}

}  // namespace pgrelay::proxy
