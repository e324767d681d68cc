// Duration syntax in config files: bare seconds, units, fractions, and what is refused.
#include <doctest/doctest.h>

#include <limits>
#include <string>

#include "conf/duration.h"

namespace pgrelay::conf {
namespace {

using std::chrono::milliseconds;

milliseconds ok_duration(std::string_view text) {
  auto d = parse_duration(text);
  REQUIRE_MESSAGE(d.ok(), std::string(text) << ": " << (d.ok() ? "" : d.error().message));
  return *d;
}

std::string error_of(std::string_view text) {
  auto d = parse_duration(text);
  REQUIRE_MESSAGE(!d.ok(), std::string(text) << " parsed as " << (d.ok() ? d->count() : 0));
  return d.error().message;
}

TEST_CASE("every unit converts to milliseconds") {
  CHECK(ok_duration("250ms") == milliseconds(250));
  CHECK(ok_duration("30s") == milliseconds(30'000));
  CHECK(ok_duration("5min") == milliseconds(300'000));
  CHECK(ok_duration("2h") == milliseconds(7'200'000));
  CHECK(ok_duration("1d") == milliseconds(86'400'000));
}

TEST_CASE("a bare number string is seconds, fractions allowed") {
  CHECK(ok_duration("15") == milliseconds(15'000));
  CHECK(ok_duration("1.5s") == milliseconds(1'500));
  CHECK(ok_duration("0.25") == milliseconds(250));
  CHECK(ok_duration(".5s") == milliseconds(500));
  CHECK(ok_duration("1.5min") == milliseconds(90'000));
  CHECK(ok_duration("0") == milliseconds(0));
}

TEST_CASE("spaces around and between number and unit are tolerated") {
  CHECK(ok_duration(" 30 s ") == milliseconds(30'000));
  CHECK(ok_duration("10 ms") == milliseconds(10));
}

TEST_CASE("sub-millisecond values round to the nearest millisecond") {
  CHECK(ok_duration("1.4ms") == milliseconds(1));
  CHECK(ok_duration("1.6ms") == milliseconds(2));
  CHECK(ok_duration("0.0004") == milliseconds(0));
}

TEST_CASE("negative durations are refused") {
  CHECK(error_of("-5s").find("non-negative") != std::string::npos);
  auto d = duration_from_seconds(-1);
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().message.find("non-negative") != std::string::npos);
}

TEST_CASE("unknown units and junk are refused, quoting what was given") {
  for (std::string_view bad : {"5m", "5 parsecs", "s", "", "  ", "1.2.3s", "5sec", "5S", "1e3",
                               "inf", "nan", "+5s", "5 s s", "0x10"}) {
    const std::string msg = error_of(bad);
    CHECK_MESSAGE(msg.find("expected a duration") != std::string::npos, bad << ": " << msg);
    CHECK_MESSAGE(msg.find("got \"" + std::string(bad) + "\"") != std::string::npos, msg);
  }
}

TEST_CASE("durations longer than a year are refused") {
  CHECK(ok_duration("365d") == milliseconds(365LL * 86'400'000));
  CHECK(error_of("366d").find("at most 365 days") != std::string::npos);
  CHECK(error_of("99999999999999999999h").find("at most 365 days") != std::string::npos);
  auto huge = duration_from_seconds(1e300);
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.error().message.find("at most 365 days") != std::string::npos);
}

TEST_CASE("duration_from_seconds converts and rounds") {
  auto d = duration_from_seconds(2.5);
  REQUIRE(d.ok());
  CHECK(*d == milliseconds(2'500));
  auto nan = duration_from_seconds(std::numeric_limits<double>::quiet_NaN());
  CHECK_FALSE(nan.ok());
}

TEST_CASE("errors carry the config SQLSTATE") {
  auto d = parse_duration("bogus");
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().sqlstate == "F0000");
}

}  // namespace
}  // namespace pgrelay::conf
