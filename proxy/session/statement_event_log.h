// statement_event_log: every statement's events as JSON lines in a file, for debugging and tests.
//
// One StatementEventLog per process (Services::statement_log, opened by the App when the
// config names a file); each session attaches a SessionEventLog observer to its StatementEvents.
// A line per start and per end:
//   {"client":7,"seq":3,"event":"start","text":"select 1","index":0,"extended":false,
//    "statement":"","portal":"","params":0,"tx":"I","wait_us":12}
//   {"client":7,"seq":3,"event":"end","outcome":"completed","tag":"SELECT 1","sqlstate":"",
//    "rows":1,"messages":3,"bytes":48,"first_response":true,"duration_us":85,"wait_us":12}
// "messages" and "bytes" count what the statement's response carried to the client. Each line
// is written whole under a mutex and flushed, so this costs a write per event: a debugging aid,
// not for production traffic.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "protocol/result.h"
#include "proxy/request/statement_events.h"

namespace pgrelay::proxy {

class StatementEventLog {
 public:
  // Opens `path` for appending. Error names the file.
  static Result<std::shared_ptr<StatementEventLog>> open(const std::string& path);
  ~StatementEventLog();

  // Appends one line (a newline is added). Thread-safe.
  void write(const std::string& line);

 private:
  explicit StatementEventLog(std::FILE* f) : file_(f) {}
  std::mutex mu_;
  std::FILE* file_;
};

// One session's observer writing to the shared log. Session thread only.
class SessionEventLog : public StatementObserver {
 public:
  SessionEventLog(std::shared_ptr<StatementEventLog> log, uint64_t client_id)
      : log_(std::move(log)), client_id_(client_id) {}

  void on_start(const StatementStart& s) override;
  void on_first_response(uint64_t seq) override { open_[seq].first_response = true; }
  void on_message(uint64_t seq, char, protocol::Bytes) override { ++open_[seq].messages; }
  void on_response_bytes(uint64_t seq, protocol::Bytes bytes) override { open_[seq].bytes += bytes.size(); }
  void on_end(const StatementEnd& e) override;

 private:
  struct Seen {
    uint64_t messages = 0, bytes = 0;
    bool first_response = false;
  };
  std::shared_ptr<StatementEventLog> log_;
  const uint64_t client_id_;
  std::unordered_map<uint64_t, Seen> open_;
};

// `s` as a JSON string literal, quotes included, valid JSON for any bytes: a byte that is not
// UTF-8 becomes U+FFFD; control characters, DEL, U+2028 and U+2029 are escaped.
std::string json_string(std::string_view s);

}  // namespace pgrelay::proxy
