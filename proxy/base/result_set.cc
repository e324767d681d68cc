// Encoding admin console result sets as RowDescription / DataRow / CommandComplete.
#include "proxy/base/result_set.h"

#include <ctime>
#include <sstream>

#include "protocol/messages.h"

namespace pgrelay::proxy {
namespace {

// pg_type OIDs and sizes of the types the console uses.
constexpr int32_t kTextOid = 25;
constexpr int32_t kInt8Oid = 20;
constexpr int32_t kFloat8Oid = 701;

}  // namespace

ResultSet::Row& ResultSet::Row::num(double v) {
  std::ostringstream out;
  out.precision(6);
  out << std::fixed << v;
  std::string s = out.str();
  // 0.500000 -> 0.5, 3.000000 -> 3
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  values_.emplace_back(std::move(s));
  return *this;
}

void ResultSet::encode(std::string_view tag, protocol::Buffer& out) const {
  protocol::RowDescription desc;
  for (const Column& c : columns_) {
    protocol::FieldDescription f;
    f.name = c.name;
    switch (c.type) {
      case Type::kText: f.type_oid = kTextOid; f.type_size = -1; break;
      case Type::kInt: f.type_oid = kInt8Oid; f.type_size = 8; break;
      case Type::kFloat: f.type_oid = kFloat8Oid; f.type_size = 8; break;
    }
    f.type_modifier = -1;
    desc.fields.push_back(f);
  }
  protocol::encode(desc, out);
  for (const Row& r : rows_) {
    protocol::DataRow data;
    for (size_t i = 0; i < columns_.size(); ++i) {
      if (i < r.values().size() && r.values()[i]) data.values.emplace_back(protocol::as_bytes(*r.values()[i]));
      else data.values.emplace_back(std::nullopt);
    }
    protocol::encode(data, out);
  }
  protocol::encode(protocol::CommandComplete{tag}, out);
}

std::string format_utc(int64_t unix_seconds, int millis) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  if (millis >= 0) n += size_t(std::snprintf(buf + n, sizeof buf - n, ".%03d", millis % 1000));
  std::snprintf(buf + n, sizeof buf - n, " UTC");
  return buf;
}

}  // namespace pgrelay::proxy
