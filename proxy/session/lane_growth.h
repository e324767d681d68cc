// When a lane spreads its reads over more server connections, and when it packs them back (lane.h,
// docs/pipelining.md "Spreading and packing").
//
// One backend running a lane's reads back to back serves the most reads where PostgreSQL and
// pgrelay share few cores: at saturation a lane packs onto one connection. But at moderate load
// that backend is the lane's weak point: when it stalls for a few milliseconds (the kernel sets it
// aside, a checkpoint), every read queues behind it, where spare cores could have run them. So
// while the lane is shallow, a read that finds every connection busy brings the lane another one
// (up to pipeline_connections, while the pool has one to spare), as a pool hands each transaction
// an idle backend. Shallow: over the last sweep period, a read found fewer than kDeep others in
// the lane (on its connections and in its FIFO) on average. A deep lane is a saturated one
// (clients in a closed loop, each waiting for its answer to send the next, keep most of
// themselves in it however many connections it has): there more backends compete for the same
// cores and serve fewer reads, so it spreads no further and busy connections do not keep what it
// grew. A connection grown goes back after a sweep period in which no read found every
// connection busy in a shallow lane and the FIFO did not lag (lane.h).
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
  // A read found every connection busy: it may bring another (may_spread()).
  void busy() { busy_ = true; }
  // The lane's FIFO lags (lane.h): it keeps the connections it grew this sweep period.
  void fifo_lagged() { fifo_lagged_ = true; }
  // Whether a read that finds every connection busy should grow the lane: it was shallow over the
  // last sweep period.
  bool may_spread() const { return !deep_; }

  enum class Verdict {
    kKeep,     // lagged this period
    kShrink,   // no lag this period: one extra connection goes
  };
  // Every sweep period (Lane::kLinger), with the connections the lane holds now.
  Verdict sweep(int conns) {
    deep_ = period_reads_ >= kMinSample && double(period_in_lane_) >= kDeep * period_reads_;
    const bool lagged = fifo_lagged_ || (busy_ && !deep_);
    fifo_lagged_ = busy_ = false;
    period_in_lane_ = 0;
    period_reads_ = 0;
    return conns > 1 && !lagged ? Verdict::kShrink : Verdict::kKeep;
  }

 private:
  bool deep_ = false;          // over the last sweep period
  bool busy_ = false;          // since the last sweep
  bool fifo_lagged_ = false;   // since the last sweep
  uint64_t period_in_lane_ = 0;  // reads in the lane when each read joined a connection, summed
  uint32_t period_reads_ = 0;
};

}  // namespace pgrelay::proxy
