// Fuzz target: startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest),
// the first bytes any client sends, before it has proved anything.
//
// Input: the packet as a client sends it, length field included (the length is taken as sent,
// so packets whose length field lies are decoded too).
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <variant>

#include "fuzz/fuzz_util.h"
#include "protocol/framer.h"
#include "protocol/startup.h"

namespace pr = pgrelay::protocol;
using pgrelay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pr::Bytes in(reinterpret_cast<const std::byte*>(data), size);
  if (size >= 4) {
    auto length = pr::startup_packet_length(in.first(4));
    if (length.ok()) check(*length >= 8 && *length <= pr::kDefaultMaxStartupSize);
  }
  auto packet = pr::decode_startup_packet(in);
  if (!packet.ok()) {
    check(packet.error().sqlstate.size() == 5);
    return 0;
  }
  // Whatever decodes encodes back to a packet that decodes to the same thing.
  pr::Buffer out;
  std::visit([&](const auto& m) { pr::encode(m, out); }, *packet);
  auto again = pr::decode_startup_packet(out);
  check(again.ok() && again->index() == packet->index());
  if (auto* m = std::get_if<pr::StartupMessage>(&*packet)) {
    const auto& m2 = std::get<pr::StartupMessage>(*again);
    check(m->params == m2.params && m->major == m2.major && m->minor == m2.minor);
    check(m->get("user") != nullptr);
    std::set<std::string> names;
    for (const auto& [name, value] : m->params) check(!name.empty() && names.insert(name).second);
  }
  if (auto* c = std::get_if<pr::CancelRequest>(&*packet)) {
    const auto& c2 = std::get<pr::CancelRequest>(*again);
    check(c->pid == c2.pid && c->secret == c2.secret);
  }
  return 0;
}
