// Log lines to stderr.
#include "proxy/base/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "protocol/utf8.h"

namespace pgrelay::proxy {
namespace {
std::atomic<int> g_level{int(conf::LogLevel::kInfo)};

// Under systemd, stderr is the journal when $JOURNAL_STREAM names its device and inode. The journal
// stamps each line itself and reads a leading "<N>" as its syslog priority (sd-daemon.h's SD_ERR
// and friends), so `journalctl -p warning` and the colours work.
bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  unsigned long long dev = 0, ino = 0;
  struct stat st {};
  return stream && std::sscanf(stream, "%llu:%llu", &dev, &ino) == 2 && ::fstat(STDERR_FILENO, &st) == 0 &&
         st.st_dev == dev && st.st_ino == ino;
}

const char* journal_priority(conf::LogLevel level) {
  switch (level) {
    case conf::LogLevel::kDebug: return "<7>";     // SD_DEBUG
    case conf::LogLevel::kInfo: return "<6>";      // SD_INFO
    case conf::LogLevel::kWarning: return "<4>";   // SD_WARNING
    case conf::LogLevel::kError: return "<3>";     // SD_ERR
  }
  return "<6>";
}
}  // namespace

void log_exception(std::exception_ptr e, const std::string& context) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log_line(conf::LogLevel::kError, context + ": " + ex.what());
  } catch (...) {
    log_line(conf::LogLevel::kError, context + ": unknown exception");
  }
}

void append_log_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  while (!text.empty()) {
    char32_t cp = 0;
    const size_t n = protocol::utf8_decode(text, cp);
    if (n == 0 || cp < 0x20 || cp == 0x7F) {
      const auto b = static_cast<unsigned char>(text[0]);
      if (b == '\n') out += "\\n";
      else if (b == '\r') out += "\\r";
      else if (b == '\t') out += "\\t";
      else out.append({'\\', 'x', kHex[b >> 4], kHex[b & 15]});
      text.remove_prefix(1);
      continue;
    }
    if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) {
      out.append({'\\', 'u', kHex[(cp >> 12) & 15], kHex[(cp >> 8) & 15], kHex[(cp >> 4) & 15], kHex[cp & 15]});
    } else {
      out.append(text.substr(0, n));
    }
    text.remove_prefix(n);
  }
}

void set_log_level(conf::LogLevel level) { g_level.store(int(level), std::memory_order_relaxed); }
bool log_enabled(conf::LogLevel level) { return int(level) >= g_level.load(std::memory_order_relaxed); }

void log_line(conf::LogLevel level, const std::string& text) {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t t = system_clock::to_time_t(now);
  int ms = int(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[40];
  size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  std::snprintf(stamp + n, sizeof stamp - n, ".%03d UTC ", ms);
  static const bool to_journal = stderr_is_journal();
  std::string line = to_journal ? journal_priority(level) : stamp;
  switch (level) {
    case conf::LogLevel::kDebug: line += "DEBUG "; break;
    case conf::LogLevel::kInfo: line += "INFO "; break;
    case conf::LogLevel::kWarning: line += "WARNING "; break;
    case conf::LogLevel::kError: line += "ERROR "; break;
  }
  append_log_escaped(line, text);
  line += '\n';
  ssize_t rc = ::write(STDERR_FILENO, line.data(), line.size());
  (void)rc;
}

}  // namespace pgrelay::proxy
