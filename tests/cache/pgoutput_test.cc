// The replication stream's envelope and pgoutput v1 messages: golden bytes, every truncation,
// trailing bytes, random bytes, and what a transaction adds up to.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "cache/pgoutput.h"

using namespace pgrelay::cache;

namespace {

struct Bytes {
  std::vector<std::byte> v;
  Bytes& c(char x) { v.push_back(std::byte(x)); return *this; }
  Bytes& i16(uint16_t x) { return c(char(x >> 8)).c(char(x)); }
  Bytes& i32(uint32_t x) { return i16(uint16_t(x >> 16)).i16(uint16_t(x)); }
  Bytes& i64(uint64_t x) { return i32(uint32_t(x >> 32)).i32(uint32_t(x)); }
  Bytes& s(std::string_view x) { for (char ch : x) c(ch); return c('\0'); }
  Bytes& raw(std::string_view x) { for (char ch : x) c(ch); return *this; }
};

Bytes begin_msg(uint64_t final_lsn, int64_t time, uint32_t xid) { return Bytes{}.c('B').i64(final_lsn).i64(uint64_t(time)).i32(xid); }
Bytes commit_msg(uint64_t lsn, uint64_t end, int64_t time) { return Bytes{}.c('C').c(0).i64(lsn).i64(end).i64(uint64_t(time)); }
Bytes relation_msg(uint32_t oid) {
  return Bytes{}.c('R').i32(oid).s("public").s("items").c('d').i16(2)
      .c(1).s("id").i32(23).i32(0xFFFFFFFF)
      .c(0).s("label").i32(25).i32(0xFFFFFFFF);
}
// A tuple of (42, 'hello') with a null and an unchanged TOAST column.
Bytes& tuple(Bytes& b) { return b.i16(4).c('t').i32(2).raw("42").c('t').i32(5).raw("hello").c('n').c('u'); }
Bytes insert_msg(uint32_t oid) { Bytes b = Bytes{}.c('I').i32(oid).c('N'); return tuple(b); }
Bytes update_msg(uint32_t oid, char old_kind) {
  Bytes b = Bytes{}.c('U').i32(oid);
  if (old_kind) tuple(b.c(old_kind));
  return tuple(b.c('N'));
}
Bytes delete_msg(uint32_t oid) { Bytes b = Bytes{}.c('D').i32(oid).c('K'); return tuple(b); }
Bytes truncate_msg(std::vector<uint32_t> oids) {
  Bytes b = Bytes{}.c('T').i32(uint32_t(oids.size())).c(1);
  for (uint32_t o : oids) b.i32(o);
  return b;
}

PgoutputMessage decode_ok(const Bytes& b) {
  PgoutputMessage m;
  std::string error;
  REQUIRE_MESSAGE(decode_pgoutput(b.v, m, error), error);
  return m;
}

}  // namespace

TEST_CASE("pgoutput: each message type's fields") {
  PgoutputMessage m = decode_ok(begin_msg(0x1'0000'0010, 123456, 777));
  CHECK(m.kind == PgoutputMessage::Kind::kBegin);
  CHECK(m.lsn == 0x1'0000'0010);
  CHECK(m.commit_time == 123456);
  CHECK(m.xid == 777);

  m = decode_ok(commit_msg(0x20, 0x58, 99));
  CHECK(m.kind == PgoutputMessage::Kind::kCommit);
  CHECK(m.lsn == 0x20);
  CHECK(m.end_lsn == 0x58);
  CHECK(m.commit_time == 99);

  m = decode_ok(relation_msg(16384));
  CHECK(m.kind == PgoutputMessage::Kind::kRelation);
  CHECK(m.relations == std::vector<Oid>{16384});
  CHECK(m.schema == "public");
  CHECK(m.name == "items");

  m = decode_ok(insert_msg(16384));
  CHECK(m.kind == PgoutputMessage::Kind::kInsert);
  CHECK(m.relations == std::vector<Oid>{16384});
  for (char old_kind : {'\0', 'K', 'O'}) {
    m = decode_ok(update_msg(0xFFFFFFF0u, old_kind));
    CHECK(m.kind == PgoutputMessage::Kind::kUpdate);
    CHECK(m.relations == std::vector<Oid>{0xFFFFFFF0u});
  }
  m = decode_ok(delete_msg(7));
  CHECK(m.kind == PgoutputMessage::Kind::kDelete);
  m = decode_ok(truncate_msg({5, 6, 9}));
  CHECK(m.kind == PgoutputMessage::Kind::kTruncate);
  CHECK(m.relations == std::vector<Oid>{5, 6, 9});
  CHECK(decode_ok(Bytes{}.c('O').i64(5).s("origin")).kind == PgoutputMessage::Kind::kOrigin);
  CHECK(decode_ok(Bytes{}.c('Y').i32(600).s("public").s("mood")).kind == PgoutputMessage::Kind::kType);
  CHECK(decode_ok(Bytes{}.c('M').c(1).i64(5).s("pfx").i32(3).raw("abc")).kind == PgoutputMessage::Kind::kMessage);
}

TEST_CASE("pgoutput: every truncation and any trailing byte is an error, never a read past the end") {
  const std::vector<Bytes> all = {begin_msg(1, 2, 3), commit_msg(1, 2, 3), relation_msg(1), insert_msg(1), update_msg(1, 'K'),
                                  update_msg(1, 0), delete_msg(1), truncate_msg({1, 2})};
  for (const Bytes& whole : all) {
    for (size_t n = 0; n < whole.v.size(); ++n) {
      PgoutputMessage m;
      std::string error;
      CHECK_FALSE(decode_pgoutput(std::span(whole.v).first(n), m, error));
      CHECK_FALSE(error.empty());
    }
    Bytes longer = whole;
    longer.c('x');
    PgoutputMessage m;
    std::string error;
    CHECK_FALSE(decode_pgoutput(longer.v, m, error));
    CHECK(error.find("longer") != std::string::npos);
  }
}

TEST_CASE("pgoutput: wrong tags and counts are errors") {
  PgoutputMessage m;
  std::string error;
  CHECK_FALSE(decode_pgoutput(Bytes{}.c('Z').v, m, error));
  CHECK(error.find("unknown pgoutput message 'Z'") != std::string::npos);
  CHECK_FALSE(decode_pgoutput(Bytes{}.c('I').i32(1).c('K').i16(0).v, m, error));   // an insert needs 'N'
  CHECK_FALSE(decode_pgoutput(Bytes{}.c('D').i32(1).c('N').i16(0).v, m, error));   // a delete needs 'K' or 'O'
  CHECK_FALSE(decode_pgoutput(Bytes{}.c('I').i32(1).c('N').i16(1).c('x').v, m, error));   // unknown column kind
  CHECK_FALSE(decode_pgoutput(Bytes{}.c('I').i32(1).c('N').i16(1).c('t').i32(0x80000000u).v, m, error));   // negative length
  CHECK_FALSE(decode_pgoutput(Bytes{}.c('T').i32(0x40000000u).c(0).i32(1).v, m, error));   // more relations than bytes
}

TEST_CASE("pgoutput: random bytes never crash") {
  std::mt19937 rng(16);
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::byte> b(rng() % 40);
    for (auto& x : b) x = std::byte(rng());
    if (!b.empty() && i % 2) b[0] = std::byte("BCRYIUDTOMwk"[rng() % 12]);
    PgoutputMessage m;
    StreamMessage s;
    std::string error;
    (void)decode_pgoutput(b, m, error);
    (void)decode_stream_message(b, s, error);
  }
}

TEST_CASE("replication envelope: XLogData and keepalive in, standby status out") {
  Bytes w = Bytes{}.c('w').i64(0x100).i64(0x200).i64(555);
  const Bytes payload = insert_msg(3);
  w.v.insert(w.v.end(), payload.v.begin(), payload.v.end());
  StreamMessage s;
  std::string error;
  REQUIRE(decode_stream_message(w.v, s, error));
  CHECK(s.kind == StreamMessage::Kind::kXLogData);
  CHECK(s.start == 0x100);
  CHECK(s.wal_end == 0x200);
  CHECK(s.send_time == 555);
  CHECK(decode_ok(Bytes{.v = {s.data.begin(), s.data.end()}}).kind == PgoutputMessage::Kind::kInsert);

  const Bytes k = Bytes{}.c('k').i64(0xABCDEF).i64(42).c(1);
  REQUIRE(decode_stream_message(k.v, s, error));
  CHECK(s.kind == StreamMessage::Kind::kKeepalive);
  CHECK(s.wal_end == 0xABCDEF);
  CHECK(s.reply_requested);
  for (size_t n = 0; n < k.v.size(); ++n) CHECK_FALSE(decode_stream_message(std::span(k.v).first(n), s, error));
  CHECK_FALSE(decode_stream_message(Bytes{k}.c(0).v, s, error));
  CHECK_FALSE(decode_stream_message(Bytes{}.c('w').i64(1).v, s, error));
  CHECK_FALSE(decode_stream_message(Bytes{}.c('q').v, s, error));

  const std::vector<std::byte> r = encode_standby_status(0x0102030405060708, 9, false);
  const Bytes expected = Bytes{}.c('r').i64(0x0102030405060708).i64(0x0102030405060708).i64(0x0102030405060708).i64(9).c(0);
  CHECK(r == expected.v);
}

TEST_CASE("pgoutput: a transaction adds up its relations, TRUNCATE included, and commits them") {
  PgoutputTransaction tx;
  PgoutputTransaction::Step step{};
  PgoutputTransaction::Committed done;
  std::string error;
  auto feed = [&](const Bytes& b) { return tx.feed(decode_ok(b), step, done, error); };

  REQUIRE(feed(begin_msg(10, 1, 1)));
  CHECK(tx.in_transaction());
  REQUIRE(feed(relation_msg(30)));
  CHECK(step == PgoutputTransaction::Step::kRelation);
  REQUIRE(feed(insert_msg(30)));
  REQUIRE(feed(update_msg(20, 0)));
  REQUIRE(feed(delete_msg(30)));
  REQUIRE(feed(truncate_msg({40, 20})));
  CHECK(step == PgoutputTransaction::Step::kNone);
  REQUIRE(feed(commit_msg(10, 64, 77)));
  CHECK(step == PgoutputTransaction::Step::kCommitted);
  CHECK(done.relations == std::vector<Oid>{20, 30, 40});
  CHECK(done.end_lsn == 64);
  CHECK(done.commit_time == 77);
  CHECK_FALSE(tx.in_transaction());

  // An empty transaction commits nothing; out-of-order messages are errors.
  REQUIRE(feed(begin_msg(11, 1, 2)));
  REQUIRE(feed(commit_msg(11, 70, 78)));
  CHECK(done.relations.empty());
  CHECK_FALSE(feed(insert_msg(1)));
  CHECK(error == "row change outside a transaction");
  CHECK_FALSE(feed(commit_msg(1, 2, 3)));
  REQUIRE(feed(begin_msg(12, 1, 3)));
  CHECK_FALSE(feed(begin_msg(13, 1, 4)));
}
