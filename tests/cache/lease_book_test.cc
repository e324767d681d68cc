// Leases on the invalidation channel: when an instance may serve unconfirmed, and whose
// acknowledgement a bump waits for (cache/lease_book.h). Time is passed in, so every case is exact.
#include "cache/lease_book.h"

#include <doctest/doctest.h>

#include "cache/lease_messages.h"
#include "cache/shared_keys.h"

using namespace pgrelay::cache;
using namespace std::chrono_literals;

namespace {

const DatabaseId kDb{7};
const LeaseBook::Time t0 = LeaseBook::Time{} + 1000s;

}  // namespace

TEST_CASE("a lease runs from its ping's send time, only for answers filled on the subscription") {
  LeaseBook book(300ms);
  CHECK(book.ping_sending(t0) == 0);   // not subscribed: no ping
  book.subscribed(t0);
  const uint64_t ping = book.ping_sending(t0 + 10ms);
  REQUIRE(ping != 0);
  CHECK_FALSE(book.serves(book.lease(), kDb, t0 + 5ms, t0 + 11ms));   // not heard back yet
  CHECK(book.heard_own_ping(ping, t0 + 20ms));
  const auto lease = book.lease();
  CHECK(book.serves(lease, kDb, t0 + 5ms, t0 + 21ms));
  CHECK(book.serves(lease, kDb, t0, t0 + 10ms + book.serve_length() - 1ms));
  CHECK_FALSE(book.serves(lease, kDb, t0, t0 + 10ms + book.serve_length()));   // from the SEND time
  CHECK_FALSE(book.serves(lease, kDb, t0 - 1ms, t0 + 21ms));   // filled before the subscription
  CHECK(book.renewals() == 1);
  CHECK(book.serve_length() < book.length());
}

TEST_CASE("a ping of an earlier subscription renews nothing, and losing the subscription ends the lease") {
  LeaseBook book(300ms);
  book.subscribed(t0);
  const uint64_t old_ping = book.ping_sending(t0 + 1ms);
  book.unsubscribed();
  CHECK_FALSE(book.heard_own_ping(old_ping, t0 + 2ms));
  book.subscribed(t0 + 3ms);
  CHECK_FALSE(book.heard_own_ping(old_ping, t0 + 4ms));
  const uint64_t ping = book.ping_sending(t0 + 5ms);
  CHECK(book.heard_own_ping(ping, t0 + 6ms));
  CHECK(book.serves(book.lease(), kDb, t0 + 3ms, t0 + 7ms));
  book.unsubscribed();
  CHECK_FALSE(book.serves(book.lease(), kDb, t0 + 3ms, t0 + 8ms));
}

TEST_CASE("a window heard holds the lease off its database only, until it lapses") {
  LeaseBook book(300ms);
  book.subscribed(t0);
  REQUIRE(book.heard_own_ping(book.ping_sending(t0), t0));
  book.hold_window(kDb, t0 + 1ms, 100ms);
  const auto lease = book.lease();
  CHECK_FALSE(book.serves(lease, kDb, t0, t0 + 2ms));
  CHECK(book.serves(lease, DatabaseId{8}, t0, t0 + 2ms));
  CHECK(book.serves(lease, kDb, t0, t0 + 101ms));
}

TEST_CASE("a bump from a pgrelay without leases holds every database off the lease for a while") {
  LeaseBook book(300ms);
  book.subscribed(t0);
  REQUIRE(book.heard_own_ping(book.ping_sending(t0), t0));
  book.hold_all(t0 + 1ms, 50ms);
  CHECK_FALSE(book.serves(book.lease(), kDb, t0, t0 + 2ms));
  CHECK(book.serves(book.lease(), kDb, t0, t0 + 51ms));
  auto v1 = decode_invalidation("1 ab12 0123456789abcdef 5 *");
  REQUIRE(v1);
  CHECK(v1->before_leases);
  CHECK_FALSE(decode_invalidation("2 ab12 0 0123456789abcdef 5 *")->before_leases);
}

TEST_CASE("a bump waits for its own echo and every live peer's acknowledgement") {
  LeaseBook book(300ms);
  book.subscribed(t0);
  const auto later = t0 + 1s;   // the subscription is older than a lease length
  book.heard_ping("b", later);
  book.heard_ping("c", later);
  const uint64_t seq = book.bump_starting();
  CHECK_FALSE(book.acknowledged(seq, later + 1ms));   // not heard back yet
  book.heard_own_bump(seq, later + 2ms);
  CHECK_FALSE(book.acknowledged(seq, later + 3ms));
  book.heard_ack("b", seq);
  CHECK_FALSE(book.acknowledged(seq, later + 4ms));
  CHECK(book.take_acknowledged(later + 4ms).empty());
  book.heard_ack("c", seq);
  CHECK(book.acknowledged(seq, later + 5ms));
  CHECK(book.take_acknowledged(later + 5ms) == std::vector<uint64_t>{seq});
  CHECK(book.take_acknowledged(later + 6ms).empty());   // reported once
  book.bump_done(seq);
  CHECK(book.pending_bumps() == 0);
}

TEST_CASE("a peer that lapsed is not waited for; a peer first heard after the echo is not needed") {
  LeaseBook book(300ms);
  book.subscribed(t0);
  const auto later = t0 + 1s;
  book.heard_ping("b", later);
  const uint64_t seq = book.bump_starting();
  book.heard_own_bump(seq, later + 1ms);
  book.heard_ping("late", later + 2ms);   // pinged after the bump: its lease includes it
  CHECK_FALSE(book.acknowledged(seq, later + 299ms));
  CHECK(book.acknowledged(seq, later + 300ms));   // b's last ping + the lease length
  CHECK(book.live_peers(later + 300ms) == 1);
}

TEST_CASE("acknowledgements that beat the echo count; a young subscription waits a lease length") {
  LeaseBook book(300ms);
  book.subscribed(t0);
  book.heard_ping("b", t0 + 1ms);
  const uint64_t seq = book.bump_starting();
  book.heard_ack("b", seq);
  book.heard_own_bump(seq, t0 + 2ms);
  // Pings sent before the subscription was confirmed were never heard: wait until it is a lease length old.
  CHECK_FALSE(book.acknowledged(seq, t0 + 299ms));
  CHECK(book.acknowledged(seq, t0 + 300ms));
}

TEST_CASE("an echo heard while not subscribed never ends a wait") {
  LeaseBook book(300ms);
  const uint64_t seq = book.bump_starting();
  book.heard_own_bump(seq, t0);
  CHECK_FALSE(book.acknowledged(seq, t0 + 10s));
}

TEST_CASE("lease messages round-trip, and anything malformed is refused") {
  const auto ping = decode_lease_ping(encode_lease_ping({.instance = "ab12", .id = 42}));
  REQUIRE(ping);
  CHECK(ping->instance == "ab12");
  CHECK(ping->id == 42);
  CHECK(encode_lease_ping({.instance = "ab12", .id = 42}) == "L ab12 42");
  const LeaseAck ack{.instance = "me", .bumps = {{"a", {1, 2}}, {"b", {9}}}};
  CHECK(encode_lease_ack(ack) == "A me a 1,2 b 9");
  const auto back = decode_lease_ack(encode_lease_ack(ack));
  REQUIRE(back);
  CHECK(back->instance == "me");
  REQUIRE(back->bumps.size() == 2);
  CHECK(back->bumps[0].second == std::vector<uint64_t>{1, 2});
  CHECK(back->bumps[1].first == "b");
  for (std::string_view bad : {"", "L", "L ab12", "L ab12 x", "L ab12 1 2", "L  1", "X ab12 1"}) {
    CHECK_MESSAGE(!decode_lease_ping(bad), bad);
  }
  for (std::string_view bad : {"", "A", "A me a", "A me a 1,", "A me a ,1", "A me a 1 b", "A me a x", "B me a 1"}) {
    CHECK_MESSAGE(!decode_lease_ack(bad), bad);
  }
  CHECK(decode_lease_ack("A me"));   // nothing to acknowledge: harmless
}
