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

// Subscribed at t0, its first ping heard back at once: the lease it reads.
LeaseBook::Lease leased(LeaseBook& book) {
  book.subscribed(t0);
  REQUIRE(book.heard_own_ping(book.ping_sending(t0), t0));
  return book.lease();
}

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
  book.hold_window(kDb, "b", 5, t0 + 1ms, 100ms);
  const auto lease = book.lease();
  CHECK_FALSE(book.serves(lease, kDb, t0, t0 + 2ms));
  CHECK(book.serves(lease, DatabaseId{8}, t0, t0 + 2ms));
  CHECK(book.windows_held(t0 + 2ms) == 1);
  // Its end never heard: held until the hold lapses, not a moment less.
  CHECK_FALSE(book.serves(lease, kDb, t0, t0 + 100ms));
  CHECK(book.serves(lease, kDb, t0, t0 + 101ms));
  CHECK(book.windows_held(t0 + 101ms) == 0);
}

TEST_CASE("a window's end lifts its instance's hold at once, and no other") {
  LeaseBook book(300ms);
  const auto lease = leased(book);
  const DatabaseId other{8};
  book.hold_window(kDb, "b", 5, t0 + 1ms, 10s);
  book.hold_window(kDb, "c", 9, t0 + 1ms, 10s);
  book.hold_window(other, "b", 6, t0 + 1ms, 10s);
  CHECK_FALSE(book.window_ended(kDb, "x", 100, t0 + 2ms));   // an instance that held nothing here
  CHECK(book.window_ended(kDb, "b", 7, t0 + 2ms));
  CHECK_FALSE(book.serves(lease, kDb, t0, t0 + 3ms));        // c's window still holds it
  CHECK_FALSE(book.serves(lease, other, t0, t0 + 3ms));      // b's window on another database too
  CHECK(book.window_ended(kDb, "c", 10, t0 + 3ms));
  CHECK(book.serves(lease, kDb, t0, t0 + 4ms));
  CHECK(book.windows_held(t0 + 4ms) == 1);
  CHECK(book.window_ended(other, "b", 7, t0 + 4ms));
  CHECK(book.serves(lease, other, t0, t0 + 5ms));
  CHECK(book.windows_held(t0 + 5ms) == 0);
}

TEST_CASE("a window's end does not lift a window of its instance opened since, nor one renewed after it") {
  LeaseBook book(300ms);
  const auto lease = leased(book);
  // b's second window (number 8) was heard before the end of its first (end 8): the messages
  // crossed, and the second is still open.
  book.hold_window(kDb, "b", 5, t0 + 1ms, 10s);
  book.hold_window(kDb, "b", 8, t0 + 2ms, 10s);
  CHECK_FALSE(book.window_ended(kDb, "b", 8, t0 + 3ms));
  CHECK_FALSE(book.serves(lease, kDb, t0, t0 + 4ms));
  CHECK(book.window_ended(kDb, "b", 9, t0 + 5ms));
  CHECK(book.serves(lease, kDb, t0, t0 + 6ms));
  // A renewal heard after the end holds again (for the whole hold: it may be another window's).
  book.hold_window(kDb, "b", 0, t0 + 7ms, 10s);
  CHECK_FALSE(book.serves(lease, kDb, t0, t0 + 8ms));
  CHECK(book.windows_held(t0 + 10s + 6ms) == 1);
  CHECK(book.windows_held(t0 + 10s + 7ms) == 0);
}

TEST_CASE("a process's windows: the end number comes with its last close, above every number it opened") {
  LeaseBook book(300ms);
  const DatabaseId other{8};
  const uint64_t first = book.window_opening(kDb);
  const uint64_t second = book.window_opening(kDb);
  const uint64_t elsewhere = book.window_opening(other);
  CHECK(first != 0);
  CHECK(second > first);
  CHECK(book.window_closing(kDb) == 0);   // the other one is still open
  const uint64_t end = book.window_closing(kDb);
  CHECK(end > second);
  CHECK(book.window_opening(kDb) >= end);   // opened after the end: not covered by it
  CHECK(book.window_closing(kDb) > end);
  CHECK(book.window_closing(kDb) == 0);    // closed more often than opened: nothing to say
  CHECK(book.window_closing(other) > elsewhere);
  // A receiver hearing them in any order ends up with nothing held.
  LeaseBook b(300ms);
  b.hold_window(kDb, "a", second, t0, 10s);
  b.hold_window(kDb, "a", first, t0, 10s);
  CHECK(b.window_ended(kDb, "a", end, t0 + 1ms));
  CHECK(b.windows_held(t0 + 1ms) == 0);
  const auto m = decode_window_end(encode_window_end({.instance = "ab12", .database = kDb, .end = end}));
  REQUIRE(m);
  CHECK(m->instance == "ab12");
  CHECK(m->database == kDb);
  CHECK(m->end == end);
  CHECK_FALSE(decode_window_end("E ab12 7"));
  CHECK_FALSE(decode_window_end("E ab12 7 0"));
  CHECK_FALSE(decode_window_end("E ab12 7 5 x"));
  CHECK_FALSE(decode_invalidation(encode_window_end({.instance = "ab12", .database = kDb, .end = end})));
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

TEST_CASE("a peer with a longer lease counts as live, and is waited for, that much longer") {
  CHECK(instance_lease_length(lease_instance_id("ab12", 1500ms)) == 1500ms);
  CHECK(instance_lease_length("ab12") == 300ms);            // a pgrelay of before redis_lease
  CHECK(instance_lease_length("ab12.x") == 300ms);
  CHECK(instance_lease_length("ab12.0") == 300ms);
  CHECK(instance_lease_length("ab12.99999999") == 60s);     // capped
  LeaseBook book(300ms);
  book.subscribed(t0);
  const auto later = t0 + 2s;
  CHECK(book.wait_length() == 300ms);
  book.heard_ping(lease_instance_id("b", 1s), later);
  book.heard_ping(lease_instance_id("c", 100ms), later);   // shorter: counted with ours
  CHECK(book.wait_length() == 1s);
  CHECK(book.live_peers(later + 299ms) == 2);
  CHECK(book.live_peers(later + 301ms) == 1);               // b still may serve
  CHECK(book.live_peers(later + 999ms) == 1);
  CHECK(book.live_peers(later + 1s) == 0);
  const uint64_t seq = book.bump_starting();
  book.heard_own_bump(seq, later + 500ms);
  CHECK_FALSE(book.acknowledged(seq, later + 900ms));       // b live, not acknowledged
  CHECK(book.acknowledged(seq, later + 1s));                // b lapsed
}
