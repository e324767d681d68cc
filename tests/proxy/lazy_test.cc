// Lazy: nothing allocated until a mutable use; reads before that see a default T.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "proxy/base/lazy.h"

using pgrelay::proxy::Lazy;

namespace {

struct State {
  std::vector<int> items;
  std::string name = "fresh";
};

}  // namespace

TEST_CASE("Lazy: const reads see the default and make nothing; a mutable use makes it once") {
  Lazy<State> lazy;
  const Lazy<State>& view = lazy;
  CHECK(view->name == "fresh");
  CHECK(view->items.empty());
  CHECK(lazy.peek().name == "fresh");
  CHECK_FALSE(lazy.made());
  lazy->items.push_back(7);
  CHECK(lazy.made());
  State* made = &lazy.get();
  lazy->name = "used";
  CHECK(&lazy.get() == made);
  CHECK(view->name == "used");
  CHECK(lazy.peek().items == std::vector<int>{7});
  // Another Lazy's default is untouched by this one's changes.
  Lazy<State> other;
  CHECK(std::as_const(other)->name == "fresh");
}
