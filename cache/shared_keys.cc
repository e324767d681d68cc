// The Redis tier's key names.
#include "cache/shared_keys.h"

#include <xxhash.h>

#include <charconv>

#include "cache/shared_value.h"

namespace pgrelay::cache {
namespace {

void append_hex(std::string& out, uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out += kDigits[(v >> shift) & 0xf];
}

std::string start(std::string_view prefix, std::string_view kind, DatabaseId database) {
  std::string out;
  out.reserve(prefix.size() + kind.size() + 56);
  out.append(prefix).append(":").append(kind).append(":");
  append_hex(out, static_cast<uint64_t>(database));
  return out;
}

// 16 hex digits, exactly.
bool parse_hex(std::string_view text, uint64_t& out) {
  if (text.size() != 16) return false;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return ec == std::errc() && p == text.data() + text.size();
}

}  // namespace

bool parse_decimal(std::string_view text, uint64_t& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && p == text.data() + text.size();
}

std::string_view next_word(std::string_view& text) {
  const size_t end = text.find(' ');
  std::string_view w = text.substr(0, end);
  text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  return w;
}

namespace {

std::string_view word(std::string_view& text) { return next_word(text); }

}  // namespace

std::string answer_key_name(std::string_view prefix, DatabaseId database, std::span<const std::byte> key) {
  std::string out = start(prefix, "a" + std::to_string(kSharedValueVersion), database);
  const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  out += ':';
  append_hex(out, h.high64);
  append_hex(out, h.low64);
  return out;
}

std::string generations_key_name(std::string_view prefix, DatabaseId database) { return start(prefix, "g", database); }

std::optional<DatabaseId> generations_key_database(std::string_view prefix, std::string_view name) {
  const std::string head = std::string(prefix) + ":g:";
  uint64_t database = 0;
  if (name.size() != head.size() + 16 || name.substr(0, head.size()) != head || !parse_hex(name.substr(head.size()), database)) {
    return std::nullopt;
  }
  return DatabaseId{database};
}

std::string windows_key_name(std::string_view prefix, DatabaseId database) { return start(prefix, "w", database); }

std::string table_field(TableId table) {
  std::string out;
  append_hex(out, static_cast<uint64_t>(table));
  return out;
}

std::string invalidation_channel_name(std::string_view prefix) { return std::string(prefix) + ":inv"; }

std::string encode_invalidation(const Invalidation& m) {
  std::string out = "2 ";
  out.append(m.instance).append(" ").append(std::to_string(m.seq)).append(" ");
  append_hex(out, static_cast<uint64_t>(m.database));
  out.append(" ").append(std::to_string(m.sent_unix_ms)).append(" ");
  if (m.window) {
    out += 'W';
  } else if (m.schema) {
    out += 'S';
  } else if (m.whole_database) {
    out += '*';
  } else {
    for (size_t i = 0; i < m.tables.size(); ++i) {
      if (i) out += ',';
      append_hex(out, static_cast<uint64_t>(m.tables[i]));
    }
  }
  return out;
}

std::optional<Invalidation> decode_invalidation(std::string_view text) {
  const std::string_view version = word(text);
  if (version != "1" && version != "2") return std::nullopt;
  Invalidation m;
  m.before_leases = version == "1";
  m.instance = std::string(word(text));
  if (m.instance.empty()) return std::nullopt;
  if (version == "2" && !parse_decimal(word(text), m.seq)) return std::nullopt;
  uint64_t database = 0;
  if (!parse_hex(word(text), database)) return std::nullopt;
  m.database = DatabaseId{database};
  if (!parse_decimal(word(text), m.sent_unix_ms)) return std::nullopt;
  const std::string_view tables = word(text);
  if (!text.empty() || tables.empty()) return std::nullopt;
  if (tables == "*" || (version == "2" && (tables == "W" || tables == "S"))) {
    m.whole_database = true;
    m.window = tables == "W";
    m.schema = tables == "S";
    return m;
  }
  for (size_t at = 0; at <= tables.size(); at += 17) {
    uint64_t t = 0;
    if (!parse_hex(tables.substr(at, 16), t)) return std::nullopt;
    m.tables.push_back(TableId{t});
    if (at + 16 < tables.size() && tables[at + 16] != ',') return std::nullopt;
  }
  return m;
}

}  // namespace pgrelay::cache
