// `kvstream bench delta`: anchor/delta coding vs direct coding on one KV file (bench/delta_study.h).
#include <iomanip>
#include <iostream>

#include "cli/command_registry.h"
#include "bench/delta_study.h"
#include "codec/safetensors.h"

KVSTREAM_COMMAND("bench delta", "Bits per value of direct vs anchor/delta coding of the quantized KV, per level",
                 ([](CLI::App& sub) -> kvstream::cli::Action {
  struct Opts {
    std::string kv, profile;
    int group = 10;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("kv", o->kv, "KV cache (.safetensors)")->required();
  sub.add_option("--profile", o->profile, "codec profile (.kvprofile, from `kvstream profile`)")->required();
  sub.add_option("--group-tokens", o->group, "tokens per anchor group (CacheGen: 10)");
  sub.add_flag("--json", o->json, "print JSON instead of the table");
  return [o] {
    const auto rows = kvstream::codec::delta_study(kvstream::read_safetensors(o->kv),
                                                    kvstream::codec::load_profile(o->profile), o->group);
    if (o->json) {
      nlohmann::json j = {{"group_tokens", o->group}, {"levels", nlohmann::json::array()}};
      for (const auto& r : rows)
        j["levels"].push_back({{"name", r.level}, {"values", r.values}, {"table_bits", r.table_bits},
                               {"direct_bits", r.direct_bits}, {"anchor_bits", r.anchor_bits},
                               {"previous_bits", r.previous_bits}});
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    std::cout << "bits per coded value (anchor groups of " << o->group << " tokens)\n"
              << std::left << std::setw(15) << "level" << std::right << std::setw(10) << "table" << std::setw(10)
              << "direct" << std::setw(10) << "anchor" << std::setw(10) << "previous\n";
    for (const auto& r : rows)
      std::cout << std::left << std::setw(15) << r.level << std::right << std::fixed << std::setprecision(3)
                << std::setw(10) << r.table_bits << std::setw(10) << r.direct_bits << std::setw(10) << r.anchor_bits
                << std::setw(10) << r.previous_bits << "\n";
    return 0;
  };
}));
