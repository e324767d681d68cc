// When a lane spreads its reads over more server connections, and when it packs them back (lane.h,
// docs/pipelining.md "Spreading and packing").
//
// One backend running a lane's reads back to back serves the most reads where PostgreSQL and
// pgrelay share few cores: at saturation a lane packs onto one connection. But at moderate load
// that backend is the lane's weak point: when it stalls for a few milliseconds (the kernel sets it
// aside, a checkpoint), every read queues behind it, where spare cores could have run them. So
// while the lane is shallow, a read that finds every connection busy brings the lane another one
// (up to pipeline_connections, while the pool has one to spare), as a pool hands each transaction
// an idle backend; so does a FIFO that lags (lane.h). Shallow: over the last sweep period, a read
// found fewer than kDeep others in the lane (on its connections and in its FIFO) on average. A
// deep lane is a saturated one (clients in a closed loop, each waiting for its answer to send the
// next, keep most of themselves in it however many connections it has): there more backends
// compete for the same cores and serve fewer reads, with a longer tail, and a lane that takes
// them from a pool that clients wait for is unfair to those clients. So a deep lane grows only
// when none of its connections will take reads soon (each running a slow one, lane.h), and gives
// back one connection each sweep period. A shallow lane gives one back after a sweep period in
// which it neither found every connection busy nor lagged.
//
// Pure bookkeeping, one thread (the lane's worker); the lane makes the moves.
#pragma once

#include <chrono>
#include <cstdint>

namespace pgrelay::proxy {

class LaneGrowth {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr double kDeep = 8;                       // reads in the lane on average: saturated
  static constexpr uint32_t kMinSample = 32;               // reads a period needs to be called deep

  // A read joined a connection with `in_lane` others in the lane.
  void joined(size_t in_lane) {
    period_in_lane_ += in_lane;
    ++period_reads_;
  }
  // A read found every connection busy, or the FIFO lags (lane.h): a shallow lane keeps the
  // connections it grew this sweep period.
  void lagged() { lagged_ = true; }
  // Whether lag should grow the lane: it was shallow over the last sweep period.
  bool shallow() const { return !deep_; }

  enum class Verdict {
    kKeep,     // a shallow lane that lagged this period
    kShrink,   // one extra connection goes
  };
  // Every sweep period (Lane::kLinger), with the connections the lane holds now.
  Verdict sweep(int conns) {
    deep_ = period_reads_ >= kMinSample && double(period_in_lane_) >= kDeep * period_reads_;
    const bool keep = lagged_ && !deep_;
    lagged_ = false;
    period_in_lane_ = 0;
    period_reads_ = 0;
    return conns > 1 && !keep ? Verdict::kShrink : Verdict::kKeep;
  }

 private:
  bool deep_ = false;          // over the last sweep period
  bool lagged_ = false;        // since the last sweep
  uint64_t period_in_lane_ = 0;  // reads in the lane when each read joined a connection, summed
  uint32_t period_reads_ = 0;
};

}  // namespace pgrelay::proxy
