// The file descriptors pgrelay may need, against RLIMIT_NOFILE.
#include "proxy/app/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>

#include "proxy/base/log.h"

namespace pgrelay::proxy {

int needed_file_descriptors(const conf::Config& config) {
  constexpr int kMargin = 64;
  long servers = 0;
  for (const auto& [name, db] : config.databases) {
    const auto& p = db.pool;
    servers += p.max_db_connections > 0 ? p.max_db_connections : p.effective_max_pool_size() + p.reserve_pool_size;
  }
  long total = long(config.max_client_conn) + servers + kMargin;
  return int(std::min<long>(total, 1L << 30));
}

void raise_file_descriptor_limit(const conf::Config& config) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  auto needed = rlim_t(needed_file_descriptors(config));
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < needed) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max == RLIM_INFINITY ? needed : std::min(needed, lim.rlim_max);
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < needed)
    log_warning("open file limit ", lim.rlim_cur, " is below the ", needed,
                " descriptors max_client_conn and the pools may need; clients beyond it are refused at accept"
                " (raise LimitNOFILE= in the systemd unit, or ulimit -n)");
}

}  // namespace pgrelay::proxy
