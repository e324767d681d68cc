// The logical replication stream as the cache's replication listener reads it: the CopyBoth
// envelope (XLogData 'w', keepalive 'k', and the standby status update 'r' sent back) and the
// pgoutput plugin's messages, protocol version 1, inside XLogData, reduced to what invalidation
// needs: which relations each committed transaction changed.
//
//   https://www.postgresql.org/docs/current/protocol-replication.html   (the envelope)
//   https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html   (pgoutput)
//
// Pure: bytes in, values out. Every length is checked; a malformed message is an error value,
// never a read past the buffer. LSNs are the server's 64-bit WAL positions; times are the
// server's microseconds since 2000-01-01 00:00 UTC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cache/catalog.h"

namespace pgrelay::cache {

using Lsn = uint64_t;

// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
inline constexpr int64_t kPostgresEpochUnixMicros = 946'684'800'000'000;

// One CopyData message of the replication stream, from the server.
struct StreamMessage {
  enum class Kind { kXLogData, kKeepalive };
  Kind kind = Kind::kKeepalive;
  Lsn start = 0;        // XLogData: where its data starts
  Lsn wal_end = 0;      // the server's end of WAL when it sent this
  int64_t send_time = 0;
  bool reply_requested = false;   // keepalive: answer at once or be disconnected
  std::span<const std::byte> data;   // XLogData: one pgoutput message (points into the input)
};

// False (with `error` said) when `bytes` is not a whole 'w' or 'k' message.
[[nodiscard]] bool decode_stream_message(std::span<const std::byte> bytes, StreamMessage& out, std::string& error);

// The standby status update 'r': written, flushed and applied up to `lsn`, at `now` (server epoch µs).
[[nodiscard]] std::vector<std::byte> encode_standby_status(Lsn lsn, int64_t now, bool reply_requested);

// One pgoutput message, v1. Only the fields invalidation uses are kept.
struct PgoutputMessage {
  enum class Kind { kBegin, kCommit, kRelation, kInsert, kUpdate, kDelete, kTruncate, kOrigin, kType, kMessage };
  Kind kind = Kind::kBegin;
  Lsn lsn = 0;              // Begin: the final LSN; Commit: the commit's LSN
  Lsn end_lsn = 0;          // Commit: the end of the transaction's WAL (what to confirm)
  int64_t commit_time = 0;  // Begin, Commit
  uint32_t xid = 0;         // Begin
  std::vector<Oid> relations;   // Insert/Update/Delete: the one; Relation: the one; Truncate: all
  std::string schema;       // Relation
  std::string name;         // Relation
};

// False (with `error` said) when `bytes` is not one whole pgoutput v1 message.
[[nodiscard]] bool decode_pgoutput(std::span<const std::byte> bytes, PgoutputMessage& out, std::string& error);

// What one transaction of the stream changed, from its Begin to its Commit.
class PgoutputTransaction {
 public:
  struct Committed {
    std::vector<Oid> relations;   // sorted, unique: every relation with a row change or a TRUNCATE
    Lsn end_lsn = 0;
    int64_t commit_time = 0;
  };
  enum class Step { kNone, kCommitted, kRelation };
  // Feeds one message. kCommitted: `committed` holds the transaction that just ended (possibly
  // with no relations: a transaction that touched no published table). kRelation: a Relation
  // message (`message` says which); the caller may look up its ancestors. False: out of order
  // (a change outside a transaction, a Begin inside one), with `error` said.
  [[nodiscard]] bool feed(const PgoutputMessage& message, Step& step, Committed& committed, std::string& error);
  bool in_transaction() const { return open_; }

 private:
  bool open_ = false;
  std::vector<Oid> touched_;
};

}  // namespace pgrelay::cache
