// The slow-query log: executions at or over slow_query_threshold, as JSON lines and in SHOW SLOW.
//
// One SlowQueryLog per process (Services::slow_queries, made by the App at start). Each session's
// QueryObserver records the slow executions it sees; the log keeps the most recent kRecent of
// them for SHOW SLOW and, when slow_query_log names "stderr" or a file, writes each as a line:
//   {"time":"2026-12-03T16:01:02.123456Z","fingerprint":"9f86d081884c7d65","query":"select pg_sleep(?)",
//    "duration_ms":1002.114,"wait_ms":0.012,"rows":1,"database":"app","user":"web",
//    "client":"10.0.0.7:51234","application_name":"api","sqlstate":""}
// With log_parameters on, "text" (the statement as sent, cut at kMaxLoggedText bytes) and
// "parameters" (its Bind values, each cut at kMaxLoggedParameter bytes; binary ones in hex) are
// added: they may hold personal data, so they are off by default.
//
// Lines are rate-limited to slow_query_log_rate per second; the ones over it are counted, and
// the next line written reports how many were dropped before it ("dropped":N). Thread-safe: a
// mutex, taken only for slow executions.
#pragma once

#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/result.h"

namespace pgrelay::proxy {

struct SlowQuery {
  int64_t unix_micros = 0;                 // when it ended
  uint64_t fingerprint = 0;
  std::string query;                       // the normalized text
  uint64_t duration_micros = 0;
  uint64_t wait_micros = 0;                // its request's wait for a server connection
  uint64_t rows = 0;
  std::string database, user, client, application_name;
  std::string sqlstate;                    // "" when it succeeded
  // With log_parameters only:
  std::optional<std::string> text;         // the statement as the client sent it
  std::vector<std::optional<std::string>> parameters;   // nullopt: SQL NULL
};

// At most `max` bytes of `s`, not ending inside a UTF-8 character.
std::string_view cut_utf8(std::string_view s, size_t max);

class SlowQueryLog {
 public:
  static constexpr size_t kRecent = 100;             // kept for SHOW SLOW
  static constexpr size_t kMaxLoggedText = 4096;
  static constexpr size_t kMaxLoggedParameter = 256;

  // `where`: "" (SHOW SLOW only), "stderr", or a file to append to (error names it).
  static Result<std::shared_ptr<SlowQueryLog>> open(const std::string& where, int lines_per_second);
  ~SlowQueryLog();
  SlowQueryLog(const SlowQueryLog&) = delete;
  SlowQueryLog& operator=(const SlowQueryLog&) = delete;

  void record(SlowQuery q);

  // Newest first.
  std::vector<SlowQuery> recent() const;
  uint64_t total() const;     // slow executions since start (or RESET QUERIES)
  uint64_t dropped() const;   // lines not written because of the rate limit
  void reset();

  // One line of the log, without its newline (`dropped` > 0 adds "dropped").
  static std::string json_line(const SlowQuery& q, uint64_t dropped);
  // A parameter value for the log: text as is, binary as \x hex; cut at kMaxLoggedParameter.
  static std::string parameter_text(std::string_view bytes, bool binary);

 private:
  SlowQueryLog(std::FILE* file, bool owned, int lines_per_second)
      : file_(file), owned_(owned), rate_(lines_per_second) {}

  mutable std::mutex mu_;
  std::FILE* file_;            // null: no lines
  const bool owned_;           // fclose on destruction (not stderr)
  const int rate_;
  std::deque<SlowQuery> recent_;
  uint64_t total_ = 0, dropped_ = 0, dropped_unreported_ = 0;
  int64_t window_second_ = 0;  // the second the rate limit is counting
  int written_in_window_ = 0;
};

}  // namespace pgrelay::proxy
