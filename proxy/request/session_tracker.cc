// What one client has left on its server connection beyond its transactions.
#include "proxy/request/session_tracker.h"

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

bool SessionTracker::on_sent(const analyzer::SessionEffects& effects, const ParamMap& reported) {
  const bool was_pinned = pinned();
  for (const auto& e : effects.effects()) {
    if (is_pinning(e.kind)) {
      add_pin(e);
    } else if (e.kind == EffectKind::kSetParameter) {
      if (!reported_by_server(reported, e.name)) pending_.push_back(e);
    } else {
      pending_.push_back(e);   // a clearing statement: takes hold at commit
    }
  }
  return !was_pinned && pinned();
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
  if (!failed_) commit(out);
  pending_.clear();
  failed_ = false;
  out.unpinned = was_pinned && !pinned();
  return out;
}

void SessionTracker::commit(Settled& out) {
  std::optional<ParamMap> sets;   // copied on first change: sets_ is shared with server connections
  auto edit = [&]() -> ParamMap& {
    if (!sets) sets = sets_ ? *sets_ : ParamMap{};
    return *sets;
  };
  for (const auto& e : pending_) {
    switch (e.kind) {
      case EffectKind::kSetParameter:
        edit()[e.name] = e.via_set_config ? quote_literal(e.value) : e.value;
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
  sets_ = sets->empty() ? nullptr : std::make_shared<const ParamMap>(std::move(*sets));
  out.sets_changed = true;
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
