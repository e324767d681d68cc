// Telling the service manager how pgrelay is doing (sd_notify), or nothing without libsystemd.
#include "proxy/app/service_notifier.h"

#include <time.h>

#include <cstdint>
#include <cstdlib>

#ifdef PGRELAY_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace pgrelay::proxy {
namespace {

// STATUS= is one line: a newline would start another assignment.
std::string status_line(const std::string& text) {
  std::string s = "STATUS=" + text;
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

ServiceNotifier::ServiceNotifier() {
#ifdef PGRELAY_HAVE_SYSTEMD
  active_ = std::getenv("NOTIFY_SOCKET") != nullptr;
  uint64_t usec = 0;
  // 0: keep $WATCHDOG_USEC; it is checked against $WATCHDOG_PID, so a child never inherits it.
  if (active_ && sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
#endif
}

void ServiceNotifier::ready(const std::string& status) { send("READY=1\n" + status_line(status)); }

void ServiceNotifier::reloading(const std::string& status) {
  // MONOTONIC_USEC: systemd 253's Type=notify-reload wants it with RELOADING=1; older ones ignore it.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t usec = uint64_t(now.tv_sec) * 1000000u + uint64_t(now.tv_nsec) / 1000u;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\n" + status_line(status));
}

void ServiceNotifier::stopping(const std::string& status) { send("STOPPING=1\n" + status_line(status)); }

void ServiceNotifier::status(const std::string& status) { send(status_line(status)); }

void ServiceNotifier::watchdog_ping() {
  if (watchdog_.count() > 0) send("WATCHDOG=1");
}

void ServiceNotifier::main_pid(int pid) { send("MAINPID=" + std::to_string(pid)); }

void ServiceNotifier::inherit_watchdog() {
#ifdef PGRELAY_HAVE_SYSTEMD
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (active_ && usec && watchdog_.count() == 0) watchdog_ = std::chrono::microseconds(std::strtoull(usec, nullptr, 10));
#endif
}

void ServiceNotifier::send(const std::string& assignments) {
#ifdef PGRELAY_HAVE_SYSTEMD
  // Failures (the manager went away) change nothing for clients: nothing to do about them.
  if (active_) (void)sd_notify(0, assignments.c_str());
#else
  (void)assignments;
#endif
}

}  // namespace pgrelay::proxy
