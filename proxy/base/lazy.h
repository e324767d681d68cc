// A member allocated on its first mutable use: state most owners never need costs a pointer.
//
// Reads through a const Lazy (or peek()) of a T not yet made see a shared default-constructed T
// and allocate nothing, so "nothing happened yet" reads as what a fresh T says. A mutable
// operator-> or operator* makes the T. Owned like a unique_ptr; not thread-safe beyond what T is.
#pragma once

#include <memory>

namespace pgrelay::proxy {

template <class T>
class Lazy {
 public:
  T* operator->() { return &get(); }
  T& operator*() { return get(); }
  const T* operator->() const { return &peek(); }
  const T& operator*() const { return peek(); }

  T& get() {
    if (!p_) [[unlikely]] make();   // the hot path is a load and a test, inlined
    return *p_;
  }
  // The T, or the default one when it has not been made; never allocates.
  const T& peek() const { return p_ ? *p_ : empty(); }
  bool made() const { return p_ != nullptr; }

 private:
  [[gnu::noinline]] void make() { p_ = std::make_unique<T>(); }
  static const T& empty() {
    static const T kEmpty{};
    return kEmpty;
  }
  std::unique_ptr<T> p_;
};

}  // namespace pgrelay::proxy
