// The logical replication stream's envelope and pgoutput v1 messages, decoded (pgoutput.h).
#include "cache/pgoutput.h"

#include <algorithm>

#include "protocol/bytes.h"

namespace pgrelay::cache {
namespace {

using protocol::Reader;

bool i64(Reader& r, uint64_t& v) {
  int32_t hi = 0, lo = 0;
  if (!r.i32(hi) || !r.i32(lo)) return false;
  v = (uint64_t(uint32_t(hi)) << 32) | uint64_t(uint32_t(lo));
  return true;
}

bool i64(Reader& r, int64_t& v) {
  uint64_t u = 0;
  if (!i64(r, u)) return false;
  v = int64_t(u);
  return true;
}

bool oid(Reader& r, Oid& v) {
  int32_t x = 0;
  if (!r.i32(x)) return false;
  v = uint32_t(x);
  return true;
}

void put64(std::vector<std::byte>& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(std::byte(v >> shift));
}

// TupleData: Int16 columns, each 'n' (null), 'u' (unchanged TOAST), or 't'/'b' with an Int32
// length and that many bytes. Only walked over: invalidation needs no values.
bool skip_tuple(Reader& r) {
  int16_t columns = 0;
  if (!r.i16(columns) || columns < 0) return false;
  for (int i = 0; i < columns; ++i) {
    uint8_t kind = 0;
    if (!r.u8(kind)) return false;
    if (kind == 'n' || kind == 'u') continue;
    if (kind != 't' && kind != 'b') return false;
    int32_t length = 0;
    protocol::Bytes ignored;
    if (!r.i32(length) || length < 0 || !r.bytes(size_t(length), ignored)) return false;
  }
  return true;
}

bool fail(std::string& error, std::string what) {
  error = std::move(what);
  return false;
}

bool decode_body(Reader& r, char type, PgoutputMessage& out, std::string& error) {
  using Kind = PgoutputMessage::Kind;
  switch (type) {
    case 'B':
      out.kind = Kind::kBegin;
      if (!i64(r, out.lsn) || !i64(r, out.commit_time)) return false;
      {
        int32_t xid = 0;
        if (!r.i32(xid)) return false;
        out.xid = uint32_t(xid);
      }
      return true;
    case 'C': {
      out.kind = Kind::kCommit;
      uint8_t flags = 0;
      return r.u8(flags) && i64(r, out.lsn) && i64(r, out.end_lsn) && i64(r, out.commit_time);
    }
    case 'O': {
      out.kind = Kind::kOrigin;
      std::string_view name;
      return i64(r, out.lsn) && r.cstr(name);
    }
    case 'R': {
      out.kind = Kind::kRelation;
      Oid id = 0;
      std::string_view schema, name;
      uint8_t identity = 0;
      int16_t columns = 0;
      if (!oid(r, id) || !r.cstr(schema) || !r.cstr(name) || !r.u8(identity) || !r.i16(columns) || columns < 0) return false;
      for (int i = 0; i < columns; ++i) {
        uint8_t flags = 0;
        std::string_view column;
        int32_t type_oid = 0, typmod = 0;
        if (!r.u8(flags) || !r.cstr(column) || !r.i32(type_oid) || !r.i32(typmod)) return false;
      }
      out.relations = {id};
      out.schema = std::string(schema);
      out.name = std::string(name);
      return true;
    }
    case 'Y': {
      out.kind = Kind::kType;
      Oid id = 0;
      std::string_view schema, name;
      return oid(r, id) && r.cstr(schema) && r.cstr(name);
    }
    case 'I':
    case 'U':
    case 'D': {
      out.kind = type == 'I' ? Kind::kInsert : type == 'U' ? Kind::kUpdate : Kind::kDelete;
      Oid id = 0;
      if (!oid(r, id)) return false;
      out.relations = {id};
      uint8_t tag = 0;
      if (!r.u8(tag)) return false;
      if (type == 'I') return tag == 'N' ? skip_tuple(r) : fail(error, "Insert without a new tuple");
      if (type == 'D') return tag == 'K' || tag == 'O' ? skip_tuple(r) : fail(error, "Delete without a key or old tuple");
      if (tag == 'K' || tag == 'O') {
        if (!skip_tuple(r) || !r.u8(tag)) return false;
      }
      return tag == 'N' ? skip_tuple(r) : fail(error, "Update without a new tuple");
    }
    case 'T': {
      out.kind = Kind::kTruncate;
      int32_t count = 0;
      uint8_t options = 0;
      if (!r.i32(count) || count < 0 || !r.u8(options)) return false;
      if (size_t(count) > r.remaining() / 4) return false;
      out.relations.resize(size_t(count));
      for (Oid& id : out.relations) {
        if (!oid(r, id)) return false;
      }
      return true;
    }
    case 'M': {   // a logical decoding message (pg_logical_emit_message): nothing to invalidate
      out.kind = Kind::kMessage;
      uint8_t flags = 0;
      uint64_t lsn = 0;
      std::string_view prefix;
      int32_t length = 0;
      protocol::Bytes content;
      return r.u8(flags) && i64(r, lsn) && r.cstr(prefix) && r.i32(length) && length >= 0 && r.bytes(size_t(length), content);
    }
    default:
      return fail(error, std::string("unknown pgoutput message '") + (type >= 32 && type < 127 ? std::string(1, type) : "?") +
                             "' (" + std::to_string(int(static_cast<unsigned char>(type))) + ")");
  }
}

}  // namespace

bool decode_stream_message(std::span<const std::byte> bytes, StreamMessage& out, std::string& error) {
  out = {};
  Reader r(bytes);
  uint8_t type = 0;
  if (!r.u8(type)) return fail(error, "empty replication message");
  if (type == 'w') {
    out.kind = StreamMessage::Kind::kXLogData;
    if (!i64(r, out.start) || !i64(r, out.wal_end) || !i64(r, out.send_time)) return fail(error, "XLogData shorter than its header");
    out.data = r.rest();
    return true;
  }
  if (type == 'k') {
    out.kind = StreamMessage::Kind::kKeepalive;
    uint8_t reply = 0;
    if (!i64(r, out.wal_end) || !i64(r, out.send_time) || !r.u8(reply)) return fail(error, "keepalive shorter than 18 bytes");
    if (!r.at_end()) return fail(error, "keepalive longer than 18 bytes");
    out.reply_requested = reply != 0;
    return true;
  }
  return fail(error, "unknown replication message type " + std::to_string(int(type)));
}

std::vector<std::byte> encode_standby_status(Lsn lsn, int64_t now, bool reply_requested) {
  std::vector<std::byte> out;
  out.reserve(34);
  out.push_back(std::byte('r'));
  put64(out, lsn);   // written
  put64(out, lsn);   // flushed: what the slot may forget
  put64(out, lsn);   // applied
  put64(out, uint64_t(now));
  out.push_back(std::byte(reply_requested ? 1 : 0));
  return out;
}

bool decode_pgoutput(std::span<const std::byte> bytes, PgoutputMessage& out, std::string& error) {
  out = {};
  error.clear();
  Reader r(bytes);
  uint8_t type = 0;
  if (!r.u8(type)) return fail(error, "empty pgoutput message");
  if (!decode_body(r, char(type), out, error)) {
    if (error.empty()) error = std::string("truncated or malformed pgoutput message '") + char(type) + "'";
    return false;
  }
  if (!r.at_end()) return fail(error, std::string("pgoutput message '") + char(type) + "' longer than its fields");
  return true;
}

bool PgoutputTransaction::feed(const PgoutputMessage& message, Step& step, Committed& committed, std::string& error) {
  using Kind = PgoutputMessage::Kind;
  step = Step::kNone;
  switch (message.kind) {
    case Kind::kBegin:
      if (open_) return fail(error, "Begin inside a transaction");
      open_ = true;
      touched_.clear();
      return true;
    case Kind::kCommit:
      if (!open_) return fail(error, "Commit outside a transaction");
      open_ = false;
      std::sort(touched_.begin(), touched_.end());
      touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
      committed = {.relations = std::move(touched_), .end_lsn = message.end_lsn, .commit_time = message.commit_time};
      touched_ = {};
      step = Step::kCommitted;
      return true;
    case Kind::kInsert:
    case Kind::kUpdate:
    case Kind::kDelete:
    case Kind::kTruncate:
      if (!open_) return fail(error, "row change outside a transaction");
      touched_.insert(touched_.end(), message.relations.begin(), message.relations.end());
      return true;
    case Kind::kRelation:
      step = Step::kRelation;
      return true;
    case Kind::kOrigin:
    case Kind::kType:
    case Kind::kMessage:
      return true;
  }
  return true;
}

}  // namespace pgrelay::cache
