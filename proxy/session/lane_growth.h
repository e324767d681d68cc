// When a lane takes more server connections to stand by for its stalls, and when it gives them back
// (lane.h, docs/pipelining.md "Packing, standing by, and saturation").
//
// One backend running a lane's reads back to back serves the most reads: it finds the next one
// already in its socket, where a backend that sleeps between reads must be woken for each. So a
// lane packs its reads onto the first of its connections that keeps up (Lane::offer). But at
// moderate load that backend is the lane's weak point: when it stalls (the kernel sets it aside,
// a checkpoint), every read queues behind it, where spare cores could have run them. So a read
// that finds every connection stalled (its statement running kStall) goes to another, and while
// the lane is shallow it brings the lane one if the pool has one to spare (up to
// pipeline_connections); so does a FIFO that lags (lane.h). The extra connections stand by for
// the next stall. Shallow: over the last sweep period, a read found fewer than kDeep others in the
// lane (on its connections and in its FIFO) on average. A deep lane is a saturated one (clients in
// a closed loop, each waiting for its answer to send the next, keep most of themselves in it
// however many connections it has): there more backends compete for the same cores and serve
// fewer reads, with a longer tail, and a lane that takes them from a pool that clients wait for
// is unfair to those clients. So a deep lane grows only when none of its connections will take
// reads soon (each running a slow one, lane.h), and gives back one connection each sweep period.
// A shallow lane gives one back after a sweep period without a stall or FIFO lag, and any
// connection unused for a period goes back (Lane::arm_sweep).
//
// Pure bookkeeping, one thread (the lane's worker); the lane makes the moves.
#pragma once

#include <chrono>
#include <cstdint>

namespace pgrelay::proxy {

class LaneGrowth {
 public:
  using Clock = std::chrono::steady_clock;
  // A statement running this long: its backend stalled. A select-only read takes 20-60 us on a
  // backend; 100 us took the p99 at 15,000 reads/s to PgBouncer's, 250 us only halfway, and every
  // use of a standby costs a wake-up (bench/README, fourteenth round).
  static constexpr std::chrono::microseconds kStall{100};
  static constexpr double kDeep = 8;                       // reads in the lane on average: saturated
  static constexpr uint32_t kMinSample = 32;               // reads a period needs to be called deep

  // A read joined a connection with `in_lane` others in the lane.
  void joined(size_t in_lane) {
    period_in_lane_ += in_lane;
    ++period_reads_;
  }
  // A read found every connection stalled, or the FIFO lags (lane.h): a shallow lane keeps the
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
