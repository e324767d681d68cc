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

using ParamMap = std::map<std::string, std::string>;

struct Setting {
  std::string name;    // lower-cased, as PostgreSQL matches setting names
  std::string value;
  bool operator==(const Setting&) const = default;
};

// The settings in `startup`, in the order sent (a later one wins). "_pq_." protocol
// extensions are not settings and are skipped. Errors (08P01): a name that is not an
// identifier ([A-Za-z_][A-Za-z0-9_.$]*), an options word other than -c/--name=value.
Result<std::vector<Setting>> startup_settings(const protocol::StartupMessage& startup);

// Lower-cased names of the server-reported (GUC_REPORT) parameters a client may change and
// must see kept when its session moves between server connections. Others that servers report
// (server_version, is_superuser, ...) cannot be SET.
bool is_restorable_parameter(std::string_view lower_name);

// A value a client wants for a setting: a plain value (startup parameters, reported
// parameters; quoted when SET), or SQL as the client wrote it after SET name TO (replayed as is).
struct WantedValue {
  std::string value;
  bool sql = false;
  std::string as_sql() const;   // the text after SET name TO
  bool operator==(const WantedValue&) const = default;
};
using WantedSettings = std::map<std::string, WantedValue>;
// A client's SETs of unreported parameters, by lower-case name: the SQL it wrote after SET name
// TO (sql), or the value it gave set_config (a plain value).
using SessionSets = std::map<std::string, WantedValue>;

// The settings a client wants on any server connection it uses: its startup settings, then
// the restorable parameters as the client last saw them reported (its own SETs included), then
// the SETs of unreported parameters it made (`session_sets`, may be null).
WantedSettings wanted_settings(const std::vector<Setting>& startup,
                               const std::map<std::string, std::string>& client_reported,
                               const SessionSets* session_sets = nullptr);

// One simple-Query string that makes a server connection carry exactly `wanted`: a plain value
// as "SELECT pg_catalog.set_config('name', 'value', false);", which reads it as a startup option
// or a config file does (a list such as search_path=s2,public stays a list; SET name TO 's2,public'
// would be one name), SQL as "SET name TO sql;", where the server's reported value (or, for unreported settings, what pgrelay applied
// earlier, tracked in `applied` as the SQL it SET) differs, and "RESET name;" for settings
// applied for an earlier client that this one does not want. Updates `applied` to what the
// string sets. Empty when nothing needs doing.
std::string sync_statements(const WantedSettings& wanted,
                            const std::map<std::string, std::string>& server_reported,
                            std::map<std::string, std::string>& applied);

// An SQL string literal (E'' form, so it means the same whatever standard_conforming_strings is).
std::string quote_literal(std::string_view value);

}  // namespace pgrelay::proxy
