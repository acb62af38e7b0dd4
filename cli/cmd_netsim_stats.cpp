// `kvstream netsim stats`: a trace's duration and per-second capacity statistics.
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/command_registry.h"
#include "netsim/trace.h"

KVSTREAM_COMMAND("netsim stats", "Capacity statistics of a trace (per-second bins over one period)", [](CLI::App& sub) {
  auto trace = std::make_shared<std::string>();
  auto scale = std::make_shared<double>(1.0);
  auto json = std::make_shared<bool>(false);
  sub.add_option("--trace", *trace, "Trace file (Mahimahi or cooked) or const:<rate>, e.g. const:50mbit")->required();
  sub.add_option("--scale", *scale, "Capacity multiplier");
  sub.add_flag("--json", *json, "Print JSON");
  return kvstream::cli::Action([=] {
    const auto t = kvstream::netsim::Trace::load(*trace, *scale);
    const auto s = t.stats();
    if (*json) {
      nlohmann::json j{{"trace", t.name()},   {"scale", t.scale()},       {"duration_s", s.duration_s},
                       {"mean_mbps", s.mean_mbps}, {"min_mbps", s.min_mbps}, {"max_mbps", s.max_mbps},
                       {"cv", s.cv},          {"bins", s.bins},
                       {"opportunities_per_period", t.opportunities_per_period()},
                       {"segments", t.segments()}, {"path_delay_ms", kvstream::netsim::ns_to_seconds(t.path_delay_ns()) * 1e3}};
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << std::fixed << std::setprecision(3) << t.name() << " (scale " << t.scale() << ")\n"
                << "  duration  " << s.duration_s << " s\n"
                << "  mean      " << s.mean_mbps << " Mbit/s\n"
                << "  min       " << s.min_mbps << " Mbit/s (1 s bins)\n"
                << "  max       " << s.max_mbps << " Mbit/s\n"
                << "  cv        " << s.cv << "\n";
    }
    return 0;
  });
});
