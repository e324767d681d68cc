// doctest runner for the proxy room (the parts that need no sockets).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
