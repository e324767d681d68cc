// The file descriptors pgrelay may need, against RLIMIT_NOFILE (systemd's LimitNOFILE=).
#pragma once

#include "conf/config.h"

namespace pgrelay::proxy {

// An estimate of the descriptors `config` can use at once: every client (max_client_conn), one
// server connection per pool slot of each database (max_db_connections where set, else its
// largest pool with reserve, counted for one user: more users need more), plus a margin for
// listeners, the metrics endpoint, log files, Redis and cancel requests.
int needed_file_descriptors(const conf::Config& config);

// Raises the soft RLIMIT_NOFILE towards the hard one when it is below needed_file_descriptors()
// (as a shell's `ulimit -n` would), and logs a warning naming both numbers when even the hard
// limit is lower: clients past it are refused at accept ("Too many open files").
void raise_file_descriptor_limit(const conf::Config& config);

}  // namespace pgrelay::proxy
