// allocator_name(): the binary's malloc, asked of jemalloc itself when it is linked.
#include "proxy/app/allocator.h"

#ifdef PGRELAY_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace pgrelay::proxy {

std::string allocator_name() {
#ifdef PGRELAY_HAVE_JEMALLOC
  const char* version = nullptr;
  size_t size = sizeof version;
  if (mallctl("version", &version, &size, nullptr, 0) == 0 && version) return std::string("jemalloc ") + version;
  return "jemalloc";
#else
  return "system";
#endif
}

}  // namespace pgrelay::proxy
