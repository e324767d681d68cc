// The slow-query log: recent slow executions and their JSON lines.
#include "proxy/session/slow_query_log.h"

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <ctime>

#include "analyzer/fingerprint.h"
#include "proxy/session/statement_event_log.h"

namespace pgrelay::proxy {
namespace {

std::string iso_time(int64_t unix_micros) {
  const std::time_t seconds = std::time_t(unix_micros / 1'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, int(unix_micros % 1'000'000));
  return buf;
}

std::string millis(uint64_t micros) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%" PRIu64 ".%03" PRIu64, micros / 1000, micros % 1000);
  return buf;
}

}  // namespace

std::string_view cut_utf8(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;   // not inside a character
  return s.substr(0, n);
}

Result<std::shared_ptr<SlowQueryLog>> SlowQueryLog::open(const std::string& where, int lines_per_second) {
  std::FILE* f = nullptr;
  bool owned = false;
  if (where == "stderr") {
    f = stderr;
  } else if (!where.empty()) {
    f = std::fopen(where.c_str(), "a");
    if (!f) return Error{"", "slow_query_log: cannot open \"" + where + "\": " + std::strerror(errno)};
    owned = true;
  }
  return std::shared_ptr<SlowQueryLog>(new SlowQueryLog(f, owned, lines_per_second));
}

SlowQueryLog::~SlowQueryLog() {
  if (owned_) std::fclose(file_);
}

void SlowQueryLog::record(SlowQuery q) {
  std::lock_guard lock(mu_);
  ++total_;
  if (file_) {
    const int64_t second = q.unix_micros / 1'000'000;
    if (second != window_second_) {
      window_second_ = second;
      written_in_window_ = 0;
    }
    if (written_in_window_ < rate_) {
      ++written_in_window_;
      const std::string line = json_line(q, dropped_unreported_) + "\n";
      dropped_unreported_ = 0;
      std::fwrite(line.data(), 1, line.size(), file_);
      std::fflush(file_);
    } else {
      ++dropped_;
      ++dropped_unreported_;
    }
  }
  recent_.push_front(std::move(q));
  if (recent_.size() > kRecent) recent_.pop_back();
}

std::vector<SlowQuery> SlowQueryLog::recent() const {
  std::lock_guard lock(mu_);
  return {recent_.begin(), recent_.end()};
}

uint64_t SlowQueryLog::total() const {
  std::lock_guard lock(mu_);
  return total_;
}

uint64_t SlowQueryLog::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void SlowQueryLog::reset() {
  std::lock_guard lock(mu_);
  recent_.clear();
  total_ = 0;
}

std::string SlowQueryLog::json_line(const SlowQuery& q, uint64_t dropped) {
  std::string out = "{\"time\":\"" + iso_time(q.unix_micros) +
                    "\",\"fingerprint\":\"" + analyzer::fingerprint_hex(q.fingerprint) +
                    "\",\"query\":" + json_string(q.query) + ",\"duration_ms\":" + millis(q.duration_micros) +
                    ",\"wait_ms\":" + millis(q.wait_micros) + ",\"rows\":" + std::to_string(q.rows) +
                    ",\"database\":" + json_string(q.database) + ",\"user\":" + json_string(q.user) +
                    ",\"client\":" + json_string(q.client) + ",\"application_name\":" + json_string(q.application_name) +
                    ",\"sqlstate\":" + json_string(q.sqlstate);
  if (q.text) out += ",\"text\":" + json_string(*q.text);
  if (q.text || !q.parameters.empty()) {
    out += ",\"parameters\":[";
    for (size_t i = 0; i < q.parameters.size(); ++i) {
      if (i > 0) out += ",";
      out += q.parameters[i] ? json_string(*q.parameters[i]) : std::string("null");
    }
    out += "]";
  }
  if (dropped > 0) out += ",\"dropped\":" + std::to_string(dropped);
  return out + "}";
}

std::string SlowQueryLog::parameter_text(std::string_view bytes, bool binary) {
  const std::string_view cut = binary ? bytes.substr(0, kMaxLoggedParameter / 2) : cut_utf8(bytes, kMaxLoggedParameter);
  std::string out;
  if (!binary) {
    out.assign(cut);
  } else {
    static constexpr char kHex[] = "0123456789abcdef";
    out = "\\x";
    for (unsigned char c : cut) {
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (cut.size() < bytes.size()) out += "...";
  return out;
}

}  // namespace pgrelay::proxy
