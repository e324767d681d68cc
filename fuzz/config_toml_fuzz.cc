// Fuzz target: the configuration loader (TOML through toml++ into a validated Config) and the
// auth_file userlist format.
//
// Input: a config file's text. Every error must name the file.
#include <cstddef>
#include <cstdint>
#include <string>

#include "conf/loader.h"
#include "conf/userlist.h"
#include "fuzz/fuzz_util.h"

namespace cf = pgrelay::conf;
using pgrelay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto c = cf::parse_config(text, "fuzz.toml");
  if (!c.ok()) check(c.error().message.find("fuzz.toml") != std::string::npos);
  auto u = cf::parse_userlist(text, "userlist.txt");
  if (!u.ok()) check(u.error().message.find("userlist.txt") != std::string::npos);
  return 0;
}
