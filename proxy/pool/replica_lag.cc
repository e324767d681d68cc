// The primary's WAL positions over time: lag in bytes and seconds, read-your-writes positions.
#include "proxy/pool/replica_lag.h"

#include <charconv>

namespace pgrelay::proxy {

std::optional<Lsn> parse_lsn(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) return std::nullopt;
  uint32_t hi = 0, lo = 0;
  auto part = [](std::string_view s, uint32_t& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
    return ec == std::errc() && end == s.data() + s.size();
  };
  if (!part(text.substr(0, slash), hi) || !part(text.substr(slash + 1), lo)) return std::nullopt;
  return (Lsn(hi) << 32) | lo;
}

uint64_t PrimaryPositions::begin_sample() {
  std::lock_guard lock(mu_);
  return ++begun_;
}

void PrimaryPositions::record(uint64_t seq, Lsn lsn, Clock::time_point at) {
  std::lock_guard lock(mu_);
  samples_.push_back({.seq = seq, .lsn = lsn, .at = at});
  if (samples_.size() > kKept) samples_.pop_front();
}

uint64_t PrimaryPositions::begun() const {
  std::lock_guard lock(mu_);
  return begun_;
}

std::optional<Lsn> PrimaryPositions::position_after(uint64_t seq) const {
  std::lock_guard lock(mu_);
  // Positions only grow: the first recorded sample numbered above `seq` is the smallest that
  // is certain to include the commit (any later one would do, later).
  for (const Sample& s : samples_)
    if (s.seq > seq) return s.lsn;
  return std::nullopt;
}

std::optional<Lsn> PrimaryPositions::latest() const {
  std::lock_guard lock(mu_);
  if (samples_.empty()) return std::nullopt;
  return samples_.back().lsn;
}

PrimaryPositions::Clock::duration PrimaryPositions::time_behind(Lsn replay, Clock::time_point now, Lsn slack) const {
  std::lock_guard lock(mu_);
  // The oldest sample the replica has not reached: the primary was there that long ago.
  for (const Sample& s : samples_) {
    if (s.lsn > replay + slack) return now > s.at ? now - s.at : Clock::duration::zero();
  }
  return Clock::duration::zero();
}

}  // namespace pgrelay::proxy
