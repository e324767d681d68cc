// Durations in config: "250ms", "30s", "5min", "2h", "1d", or a plain number of seconds.
#include "conf/duration.h"

#include <charconv>
#include <cmath>
#include <sstream>
#include <string>

#include "conf/conf_error.h"

namespace pgrelay::conf {
namespace {

// A timeout longer than a year is a typo, and capping here keeps every later
// `now() + timeout` far away from overflowing a nanosecond clock.
constexpr double kMaxSeconds = 365.0 * 24 * 3600;

constexpr const char* kExpected =
    "expected a duration such as \"250ms\", \"30s\", \"5min\" or \"2h\" (units ms, s, min, h, d; "
    "a bare number is seconds)";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string seconds_text(double seconds) {
  std::ostringstream out;
  out.precision(12);
  out << seconds << " seconds";
  return out.str();
}

// Seconds per unit; 0 for an unknown unit.
double unit_seconds(std::string_view unit) {
  if (unit.empty() || unit == "s") return 1;
  if (unit == "ms") return 0.001;
  if (unit == "min") return 60;
  if (unit == "h") return 3600;
  if (unit == "d") return 86400;
  return 0;
}

}  // namespace

pgrelay::Result<Duration> duration_from_seconds(double seconds) {
  if (std::isnan(seconds)) return config_error("expected a number of seconds, got nan");
  if (seconds < 0) {
    return config_error("expected a non-negative duration, got " + seconds_text(seconds));
  }
  if (seconds > kMaxSeconds) {
    return config_error("expected a duration of at most 365 days, got " + seconds_text(seconds));
  }
  // Rounded to the nearest millisecond: Duration's resolution.
  return Duration{std::llround(seconds * 1000.0)};
}

pgrelay::Result<Duration> parse_duration(std::string_view text) {
  const std::string_view s = trim(text);
  if (s.empty()) return config_error(std::string(kExpected) + ", got " + quoted(text));
  if (s.front() == '-') {
    return config_error("expected a non-negative duration, got " + quoted(text));
  }

  // Digits with an optional fraction; no sign, no exponent, no "inf".
  size_t n = 0;
  bool digits = false;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n, digits = true;
  if (n < s.size() && s[n] == '.') {
    ++n;
    while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n, digits = true;
  }
  if (!digits) return config_error(std::string(kExpected) + ", got " + quoted(text));

  double value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + n, value, std::chars_format::fixed);
  if (ec != std::errc() || end != s.data() + n) {
    return config_error(std::string(kExpected) + ", got " + quoted(text));
  }
  const double per_unit = unit_seconds(trim(s.substr(n)));
  if (per_unit == 0) return config_error(std::string(kExpected) + ", got " + quoted(text));
  const double seconds = value * per_unit;
  if (seconds > kMaxSeconds) {
    return config_error("expected a duration of at most 365 days, got " + quoted(text));
  }
  return duration_from_seconds(seconds);
}

}  // namespace pgrelay::conf
