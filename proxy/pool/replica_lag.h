// The primary's WAL positions over time, and what they say about a replica: how far behind it
// is in bytes and in time, and which position a client must wait for after its write
// (read-your-writes). Pure: the poller (replica_set.h) feeds it samples and times.
//
// A sample is numbered when its query is sent (begin_sample) and filled when the answer comes
// (record), so "the first sample begun after a commit completed" is a position at or past that
// commit: pg_current_wal_insert_lsn() then counts every record inserted before it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string_view>

namespace pgrelay::proxy {

using Lsn = uint64_t;

// PostgreSQL's text form of a pg_lsn ("16/B374D848"); nullopt when it is not one.
std::optional<Lsn> parse_lsn(std::string_view text);

class PrimaryPositions {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kKept = 512;   // samples kept for time lag (a couple of minutes at 250ms)

  // Numbers the next sample; call just before its query is sent. Thread-safe.
  uint64_t begin_sample();
  // The answer of sample `seq`, taken at `at`. Samples are recorded in order.
  void record(uint64_t seq, Lsn lsn, Clock::time_point at);
  // How many samples have been begun: what a session notes when its write commits.
  uint64_t begun() const;
  // The position of the first sample begun after `seq` was the number begun, once it has an
  // answer: a replica replayed to it has everything committed before then.
  std::optional<Lsn> position_after(uint64_t seq) const;
  // The latest position, if any.
  std::optional<Lsn> latest() const;
  // How long ago the primary was last at or before `replay`: zero when `replay` has caught up
  // with the latest sample; the age of the oldest sample kept when it is behind all of them.
  // `slack` bytes behind count as caught up (a position at a WAL page start may read a page
  // header's length past the last record).
  Clock::duration time_behind(Lsn replay, Clock::time_point now, Lsn slack = 64) const;

 private:
  struct Sample {
    uint64_t seq = 0;
    Lsn lsn = 0;
    Clock::time_point at{};
  };
  mutable std::mutex mu_;
  uint64_t begun_ = 0;
  std::deque<Sample> samples_;
};

}  // namespace pgrelay::proxy
