// The lease messages on the invalidation channel: pings, acknowledgements, windows' ends.
#include "cache/lease_messages.h"

#include <algorithm>

#include "cache/shared_keys.h"

namespace pgrelay::cache {

std::string lease_instance_id(std::string_view random, std::chrono::milliseconds lease) {
  return std::string(random) + "." + std::to_string(lease.count());
}

std::chrono::milliseconds instance_lease_length(std::string_view instance) {
  constexpr std::chrono::milliseconds kBeforeTheKey{300};
  constexpr uint64_t kMostMs = 60'000;
  const size_t dot = instance.rfind('.');
  uint64_t ms = 0;
  if (dot == std::string_view::npos || !parse_decimal(instance.substr(dot + 1), ms) || ms == 0) return kBeforeTheKey;
  return std::chrono::milliseconds(std::min(ms, kMostMs));
}

std::string encode_lease_ping(const LeasePing& m) { return "L " + m.instance + " " + std::to_string(m.id); }

std::optional<LeasePing> decode_lease_ping(std::string_view text) {
  if (next_word(text) != "L") return std::nullopt;
  LeasePing m;
  m.instance = std::string(next_word(text));
  if (m.instance.empty() || !parse_decimal(next_word(text), m.id) || !text.empty()) return std::nullopt;
  return m;
}

std::string encode_lease_ack(const LeaseAck& m) {
  std::string out = "A " + m.instance;
  for (const auto& [to, seqs] : m.bumps) {
    if (seqs.empty()) continue;
    out.append(" ").append(to).append(" ");
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (i) out += ',';
      out += std::to_string(seqs[i]);
    }
  }
  return out;
}

std::optional<LeaseAck> decode_lease_ack(std::string_view text) {
  if (next_word(text) != "A") return std::nullopt;
  LeaseAck m;
  m.instance = std::string(next_word(text));
  if (m.instance.empty()) return std::nullopt;
  while (!text.empty()) {
    const std::string_view to = next_word(text);
    std::string_view list = next_word(text);
    if (to.empty() || list.empty()) return std::nullopt;
    std::vector<uint64_t> seqs;
    for (;;) {
      const size_t comma = list.find(',');
      uint64_t seq = 0;
      if (!parse_decimal(list.substr(0, comma), seq)) return std::nullopt;
      seqs.push_back(seq);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    m.bumps.emplace_back(std::string(to), std::move(seqs));
  }
  return m;
}

std::string encode_window_end(const WindowEnd& m) {
  return "E " + m.instance + " " + std::to_string(static_cast<uint64_t>(m.database)) + " " + std::to_string(m.end);
}

std::optional<WindowEnd> decode_window_end(std::string_view text) {
  if (next_word(text) != "E") return std::nullopt;
  WindowEnd m;
  m.instance = std::string(next_word(text));
  uint64_t database = 0;
  if (m.instance.empty() || !parse_decimal(next_word(text), database) || !parse_decimal(next_word(text), m.end) || m.end == 0 ||
      !text.empty()) {
    return std::nullopt;
  }
  m.database = DatabaseId{database};
  return m;
}

}  // namespace pgrelay::cache
