// TLS setting values: names of the modes and versions, and the client_tls_protocols syntax.
#include "conf/tls_settings.h"

#include <optional>
#include <vector>

#include "conf/conf_error.h"

namespace pgrelay::conf {
namespace {

std::optional<TlsVersion> version_named(std::string_view name) {
  if (name == "tlsv1.0" || name == "tlsv1") return TlsVersion::kTls10;
  if (name == "tlsv1.1") return TlsVersion::kTls11;
  if (name == "tlsv1.2") return TlsVersion::kTls12;
  if (name == "tlsv1.3") return TlsVersion::kTls13;
  return std::nullopt;
}

}  // namespace

const char* to_string(ClientTlsMode m) { return kClientTlsModeNames[size_t(m)].data(); }
const char* to_string(ServerTlsMode m) { return kServerTlsModeNames[size_t(m)].data(); }

const char* to_string(TlsVersion v) {
  switch (v) {
    case TlsVersion::kTls10: return "TLSv1";
    case TlsVersion::kTls11: return "TLSv1.1";
    case TlsVersion::kTls12: return "TLSv1.2";
    case TlsVersion::kTls13: return "TLSv1.3";
  }
  return "unknown";
}

std::string to_config_string(const TlsProtocols& p) {
  if (p.min == TlsVersion::kTls12 && p.max == TlsVersion::kTls13) return "secure";
  if (p.min == TlsVersion::kTls10 && p.max == TlsVersion::kTls13) return "all";
  static constexpr const char* kNames[] = {"tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"};
  std::string out;
  for (int v = int(p.min); v <= int(p.max); ++v) out += std::string(out.empty() ? "" : ",") + kNames[v];
  return out;
}

Result<TlsProtocols> parse_tls_protocols(std::string_view text) {
  const std::string expected =
      "expected \"secure\" (TLS 1.2 and 1.3), \"all\", \"legacy\", or consecutive versions out of tlsv1.0, "
      "tlsv1.1, tlsv1.2, tlsv1.3 separated by commas, got \"" + std::string(text) + "\"";
  std::vector<TlsVersion> versions;
  size_t start = 0;
  bool keyword = false;
  TlsProtocols out;
  while (start <= text.size()) {
    size_t end = text.find_first_of(", ", start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view item = text.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    if (item == "secure" || item == "all" || item == "legacy") {
      if (keyword || !versions.empty()) return config_error(expected);
      keyword = true;
      out.min = item == "secure" ? TlsVersion::kTls12 : TlsVersion::kTls10;
      out.max = TlsVersion::kTls13;
      continue;
    }
    auto v = version_named(item);
    if (!v || keyword) return config_error(expected);
    versions.push_back(*v);
  }
  if (keyword) return out;
  if (versions.empty()) return config_error(expected);
  int lo = 4, hi = -1;
  for (TlsVersion v : versions) {
    lo = std::min(lo, int(v));
    hi = std::max(hi, int(v));
  }
  // A gap ("tlsv1.0,tlsv1.2") cannot be expressed as OpenSSL's minimum and maximum.
  for (int v = lo; v <= hi; ++v) {
    bool listed = false;
    for (TlsVersion x : versions) listed |= int(x) == v;
    if (!listed) return config_error(expected + " (" + to_string(TlsVersion(v)) + " is missing in between)");
  }
  out.min = TlsVersion(lo);
  out.max = TlsVersion(hi);
  return out;
}

}  // namespace pgrelay::conf
