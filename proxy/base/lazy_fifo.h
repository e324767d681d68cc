// A first-in first-out queue that allocates nothing until something is pushed.
//
// libstdc++'s std::deque allocates a 64-byte map and a 512-byte block when it is constructed;
// per client session that is more than half a KiB for queues most idle clients never use. This
// keeps a vector and the index of its front: push_back appends, pop_front advances, and when the
// last element goes the vector is emptied (its capacity stays for the next burst, and is given
// back when it grew large). Front and back in O(1); no random access.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace pgrelay::proxy {

template <class T>
class LazyFifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  void push_back(T v) { items_.push_back(std::move(v)); }
  void pop_front() {
    items_[head_] = T();   // release what it holds now, not when the vector is next emptied
    if (++head_ == items_.size()) clear();
  }
  void clear() {
    items_.clear();
    head_ = 0;
    if (items_.capacity() > kKeptCapacity) std::vector<T>().swap(items_);
  }
  auto begin() const { return items_.begin() + std::ptrdiff_t(head_); }
  auto end() const { return items_.end(); }

 private:
  static constexpr size_t kKeptCapacity = 64;
  std::vector<T> items_;
  size_t head_ = 0;
};

}  // namespace pgrelay::proxy
