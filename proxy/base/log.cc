// Log lines to stderr.
#include "proxy/base/log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

namespace pgrelay::proxy {
namespace {
std::atomic<int> g_level{int(conf::LogLevel::kInfo)};
}

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
  std::string line = stamp;
  switch (level) {
    case conf::LogLevel::kDebug: line += "DEBUG "; break;
    case conf::LogLevel::kInfo: line += "INFO "; break;
    case conf::LogLevel::kWarning: line += "WARNING "; break;
    case conf::LogLevel::kError: line += "ERROR "; break;
  }
  line += text;
  line += '\n';
  ssize_t rc = ::write(STDERR_FILENO, line.data(), line.size());
  (void)rc;
}

}  // namespace pgrelay::proxy
