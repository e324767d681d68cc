// The settings a client asks for at startup, and the SET statements that apply them to a server.
//
// PostgreSQL treats every StartupMessage parameter other than user/database/replication/
// options as a setting ("-c name=value" pairs in options too). pgrelay's server connections
// are shared, so it applies them with SET after taking a connection. Pure: no I/O.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "protocol/result.h"
#include "protocol/startup.h"

namespace pgrelay::proxy {

struct Setting {
  std::string name;    // lower-cased, as PostgreSQL matches setting names
  std::string value;
  bool operator==(const Setting&) const = default;
};

// The settings in `startup`, in the order sent (a later one wins). "_pq_." protocol
// extensions are not settings and are skipped. Errors (08P01): a name that is not an
// identifier ([A-Za-z_][A-Za-z0-9_.$]*), an options word other than -c/--name=value.
Result<std::vector<Setting>> startup_settings(const protocol::StartupMessage& startup);

// One simple-Query string of "SET name TO E'value';" for each setting whose value differs
// from what the server reports in `current` (names compared case-insensitively); empty when
// nothing needs setting.
std::string set_statements(const std::vector<Setting>& settings, const std::map<std::string, std::string>& current);

// An SQL string literal (E'' form, so it means the same whatever standard_conforming_strings is).
std::string quote_literal(std::string_view value);

}  // namespace pgrelay::proxy
