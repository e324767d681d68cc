// Which malloc the pgrelay binary runs on (PGRELAY_MALLOC at build time), for --version.
#pragma once

#include <string>

namespace pgrelay::proxy {

// "jemalloc 5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c", or "system".
std::string allocator_name();

}  // namespace pgrelay::proxy
