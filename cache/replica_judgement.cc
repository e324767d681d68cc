// Which statements a read replica may run: judge_read's facts under a standby's rules.
#include "cache/replica_judgement.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

namespace pgrelay::cache {
namespace {

// Built-in functions that write, take locks or need a transaction ID: a standby refuses them
// (or they mean nothing there), so a read calling one goes to the primary whatever the facts say.
constexpr std::array<std::string_view, 24> kPrimaryOnly = {
    "nextval", "setval", "currval", "lastval", "txid_current", "pg_current_xact_id", "txid_current_if_assigned",
    "pg_current_xact_id_if_assigned", "pg_notify", "set_config", "pg_advisory_lock", "pg_advisory_xact_lock",
    "pg_try_advisory_lock", "pg_try_advisory_xact_lock", "pg_advisory_lock_shared", "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock_shared", "lo_creat", "lo_create", "lo_import",
    "lo_unlink", "lo_put", "lo_from_bytea"};

bool primary_only(const RoutineName& r) {
  if (r.kind != RoutineKind::kFunction || (!r.schema.empty() && r.schema != "pg_catalog")) return false;
  std::string lower(r.name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return std::find(kPrimaryOnly.begin(), kPrimaryOnly.end(), lower) != kPrimaryOnly.end() ||
         lower.starts_with("pg_advisory_unlock");
}

std::string display(const RoutineName& r) { return r.schema.empty() ? r.name : r.schema + "." + r.name; }

ReplicaJudgement primary(std::string reason) { return {.verdict = ReplicaVerdict::kPrimary, .reason = std::move(reason)}; }

}  // namespace

ReplicaJudgement judge_replica(const AccessAnalysis& a, const CatalogView* catalog) {
  if (a.statements != 1) return primary(a.statements == 0 ? "empty" : "several statements");
  if (a.kind == StatementKind::kTransaction || a.kind == StatementKind::kUtility) {
    if (a.read_only) return {.verdict = ReplicaVerdict::kReadOnlyTransaction, .reason = {}};
    return primary("not a read");
  }
  if (a.kind != StatementKind::kRead) return primary("not a read");
  if (a.locks_rows) return primary("FOR UPDATE/SHARE");
  for (const RelationName& name : a.reads) {
    const RelationInfo* info = catalog ? catalog->relation(name) : nullptr;
    // A standby has no rows of an unlogged table, and a temporary one is the primary session's.
    if (info && info->found && info->persistence != 'p') return primary("unlogged or temporary table: " + name.name);
  }
  for (const RoutineName& name : a.routines) {
    if (primary_only(name)) return primary("needs the primary: " + display(name));
    const RoutineInfo* info = catalog ? catalog->routine(name) : nullptr;
    if (info && info->found && info->may_write) return primary("volatile function may write: " + display(name));
    if (name.kind != RoutineKind::kFunction) continue;   // operators and casts: unless the facts say otherwise
    if (!info) return primary("function not known read-only (no catalog facts): " + display(name));
    if (!info->found) return primary("unknown function: " + display(name));
  }
  return {.verdict = ReplicaVerdict::kReplica, .reason = {}};
}

}  // namespace pgrelay::cache
