// Admin console commands: the text a client sent -> typed commands, or a 42601 error. Pure.
//
// The grammar is PgBouncer's: one keyword, then for some commands a subject or a database name,
// case-insensitive, an optional trailing ';'. Several commands in one Query are split on ';'
// outside quotes and run in order. Names may be "double-quoted" (case kept); SET values may be
// numbers, bare words or 'single-quoted strings'.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/result.h"

namespace pgrelay::proxy {

struct AdminCommand {
  enum class Verb {
    kShow, kPause, kResume, kSuspend, kDisable, kEnable, kReconnect, kKill, kKillClient, kWaitClose,
    kReload, kShutdown, kSet, kResetQueries, kCacheFlush, kCacheEnable, kCacheDisable, kCacheWarm
  };
  Verb verb = Verb::kShow;
  std::string subject;    // SHOW: upper case ("POOLS"); SET: the key, lower case; CACHE FLUSH: ALL, TABLE or QUERY
  // a database (may be ""; CACHE WARM's too), a client id, SET's value as a TOML literal, or CACHE's table or fingerprint
  std::string argument;

  // The CommandComplete tag: "SHOW", "PAUSE", "KILL_CLIENT", "SET"...
  std::string tag() const;
  // Whether stats_users may run it (SHOW only).
  bool read_only() const { return verb == Verb::kShow; }
};

// What SHOW takes, with a line of help each; PgBouncer's subjects first, then pgrelay's own.
struct ShowSubject {
  std::string_view name;
  std::string_view help;
};
std::span<const ShowSubject> show_subjects();

// Every command with its arguments and a line of help, for SHOW HELP.
struct CommandHelp {
  std::string_view syntax;
  std::string_view help;
};
std::span<const CommandHelp> command_help();

// The hint that goes with every 42601 from the console.
inline constexpr const char* kConsoleHint = "SHOW HELP lists the admin console's commands.";

// Splits a Query's text into statements on ';' outside quotes; blank ones are dropped.
std::vector<std::string> split_statements(std::string_view text);

// Parses one statement. Errors carry SQLSTATE 42601 and say what was wrong
// ("unknown command \"FOO\"", "PAUSE takes at most one database name, got 2 words", ...).
Result<AdminCommand> parse_admin_command(std::string_view statement);

}  // namespace pgrelay::proxy
