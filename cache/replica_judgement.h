// May a statement run on a read replica (docs/replicas.md)? The same text and catalog facts the
// cache's judge_read uses, with the standby's rules: a replica runs a plain read (no row locks,
// no function that may write or that a standby refuses), or a transaction declared READ ONLY.
//
// Pure; no I/O. The caller memoizes the AccessAnalysis per text (AccessMemo) and passes the
// catalog view it holds, if any.
#pragma once

#include <string>

#include "cache/access_analysis.h"
#include "cache/catalog.h"

namespace pgrelay::cache {

enum class ReplicaVerdict {
  kReplica,               // a plain read: a replica may run it in autocommit
  kReadOnlyTransaction,   // BEGIN/START TRANSACTION ... READ ONLY (or SET TRANSACTION READ ONLY)
  kPrimary,               // anything else
};

struct ReplicaJudgement {
  ReplicaVerdict verdict = ReplicaVerdict::kPrimary;
  std::string reason;   // kPrimary: why
};

// `catalog` may be null (no facts fetched for this session). Functions are read-only only when
// the facts say so (found, not a volatile one outside pg_catalog) and a standby runs them
// (nextval, advisory locks, txid_current, large-object writes, ... never); operators and casts
// unless the facts say they may write; relations unless the facts say unlogged or temporary.
ReplicaJudgement judge_replica(const AccessAnalysis& analysis, const CatalogView* catalog);

}  // namespace pgrelay::cache
