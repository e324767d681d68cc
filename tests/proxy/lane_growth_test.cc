// When a lane spreads over more connections and when it packs back (proxy/session/lane_growth.h).
#include <doctest/doctest.h>

#include "proxy/session/lane_growth.h"

using namespace pgrelay::proxy;

namespace {

// A sweep period in which `reads` reads joined, each finding `in_lane` others in the lane.
void period(LaneGrowth& g, uint32_t reads, size_t in_lane) {
  for (uint32_t i = 0; i < reads; ++i) g.joined(in_lane);
}

}  // namespace

TEST_CASE("a lane is shallow while fewer than 8 reads are in it on average over a period") {
  LaneGrowth g;
  CHECK(g.shallow());      // nothing measured yet
  period(g, 1000, 0);      // moderate load: the backend keeps up
  CHECK(g.sweep(1) == LaneGrowth::Verdict::kKeep);
  CHECK(g.shallow());
  period(g, 1000, 20);     // saturated: a closed loop of 32 clients keeps most of them in the lane
  CHECK(g.sweep(1) == LaneGrowth::Verdict::kKeep);
  CHECK_FALSE(g.shallow());
  period(g, 1000, 7);      // just under kDeep on average
  g.sweep(1);
  CHECK(g.shallow());
}

TEST_CASE("too few reads in a period say nothing about depth") {
  LaneGrowth g;
  period(g, LaneGrowth::kMinSample - 1, 100);
  g.sweep(1);
  CHECK(g.shallow());
  period(g, LaneGrowth::kMinSample, 100);
  g.sweep(1);
  CHECK_FALSE(g.shallow());
}

TEST_CASE("a shallow lane keeps grown connections while it lags, and gives one back a period after") {
  LaneGrowth g;
  period(g, 500, 0);
  g.lagged();
  CHECK(g.sweep(3) == LaneGrowth::Verdict::kKeep);
  period(g, 500, 1);
  g.lagged();
  CHECK(g.sweep(3) == LaneGrowth::Verdict::kKeep);
  period(g, 500, 0);   // a quiet period
  CHECK(g.sweep(3) == LaneGrowth::Verdict::kShrink);
  CHECK(g.sweep(2) == LaneGrowth::Verdict::kShrink);
  CHECK(g.sweep(1) == LaneGrowth::Verdict::kKeep);   // one connection is never given back for this
}

TEST_CASE("a deep lane gives one connection back each period, lagging or not") {
  LaneGrowth g;
  period(g, 1000, 24);   // 32 clients in a closed loop, however many connections
  g.lagged();
  CHECK(g.sweep(4) == LaneGrowth::Verdict::kShrink);
  CHECK_FALSE(g.shallow());
  period(g, 1000, 24);
  g.lagged();
  CHECK(g.sweep(3) == LaneGrowth::Verdict::kShrink);
  period(g, 1000, 24);
  CHECK(g.sweep(1) == LaneGrowth::Verdict::kKeep);
}
