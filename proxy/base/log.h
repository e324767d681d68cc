// Log lines to stderr: one write() per line, so threads never interleave within a line.
//
// The level is process-wide (set from the config at start and on reload); everything else
// is passed in. Lines read "2026-11-25 09:34:14.123 LEVEL message"; when stderr is systemd's
// journal ($JOURNAL_STREAM), "<N>LEVEL message" with N the syslog priority instead of the time.
#pragma once

#include <atomic>
#include <exception>
#include <sstream>
#include <string>
#include <string_view>

#include "conf/config.h"

namespace pgrelay::proxy {

void set_log_level(conf::LogLevel level);
bool log_enabled(conf::LogLevel level);
// Writes one line; `text` goes through append_log_escaped(), so client-supplied strings in it
// (database, user, application_name, statement and error texts) can never forge a line.
void log_line(conf::LogLevel level, const std::string& text);
// Appends `text` escaped for a log line: \n, \r, \t, other control bytes and DEL as \xNN,
// C1 controls and U+2028/U+2029 as \uNNNN, bytes that are not UTF-8 as \xNN; the rest as is.
void append_log_escaped(std::string& out, std::string_view text);

template <class... Args>
void log(conf::LogLevel level, const Args&... args) {
  if (!log_enabled(level)) return;
  std::ostringstream s;
  (s << ... << args);
  log_line(level, s.str());
}
// For co_spawn completion handlers (never bare `detached`): logs an exception that escaped a
// coroutine as "<context>: <what>". Does nothing for a null exception_ptr.
void log_exception(std::exception_ptr e, const std::string& context);

template <class... Args> void log_debug(const Args&... a) { log(conf::LogLevel::kDebug, a...); }
template <class... Args> void log_info(const Args&... a) { log(conf::LogLevel::kInfo, a...); }
template <class... Args> void log_warning(const Args&... a) { log(conf::LogLevel::kWarning, a...); }
template <class... Args> void log_error(const Args&... a) { log(conf::LogLevel::kError, a...); }

}  // namespace pgrelay::proxy
