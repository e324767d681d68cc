// LazyFifo: first in, first out, nothing allocated until used, what it held released on pop.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "proxy/base/lazy_fifo.h"

using pgrelay::proxy::LazyFifo;

TEST_CASE("LazyFifo: order, interleaved pushes and pops, iteration from the front") {
  LazyFifo<int> q;
  CHECK(q.empty());
  CHECK(q.size() == 0);
  for (int i = 0; i < 5; ++i) q.push_back(i);
  CHECK(q.front() == 0);
  q.pop_front();
  q.pop_front();
  q.push_back(5);
  CHECK(q.size() == 4);
  std::vector<int> seen(q.begin(), q.end());
  CHECK(seen == std::vector<int>{2, 3, 4, 5});
  while (!q.empty()) q.pop_front();
  CHECK(q.size() == 0);
  q.push_back(7);
  CHECK(q.front() == 7);
}

TEST_CASE("LazyFifo: a popped element is destroyed at once, not when the queue next empties") {
  LazyFifo<std::shared_ptr<int>> q;
  auto a = std::make_shared<int>(1);
  auto b = std::make_shared<int>(2);
  q.push_back(a);
  q.push_back(b);
  CHECK(a.use_count() == 2);
  q.pop_front();
  CHECK(a.use_count() == 1);   // released although b is still queued
  CHECK(*q.front() == 2);
}
