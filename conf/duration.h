// Durations in config: a number of seconds (fractions allowed) or a string with a unit.
#pragma once

#include <string_view>

#include "conf/config.h"
#include "protocol/result.h"

namespace pgrelay::conf {

// "250ms", "30s", "5min", "2h", "1.5s"; a bare number string is seconds. Negative is an error.
pgrelay::Result<Duration> parse_duration(std::string_view text);
pgrelay::Result<Duration> duration_from_seconds(double seconds);

}  // namespace pgrelay::conf
