// Result<T>: the one way pgrelay returns "a value, or what went wrong" on the data path.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace pgrelay {

// What went wrong. `sqlstate` is the five-character SQLSTATE a client would be sent
// (e.g. "08P01" for a protocol violation); `message` is a sentence for people.
struct Error {
  std::string sqlstate;
  std::string message;
};

// Either a T or an Error. Cheap to move; never throws on the happy path.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                 // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}             // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace pgrelay
