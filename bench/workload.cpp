#include "bench/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace kvstream::store {
namespace {

// Sentences of each story (stories are separated by blank lines), in text order.
std::vector<std::vector<std::string>> split_stories(const std::string& text, size_t from) {
  std::vector<std::vector<std::string>> stories;
  // Start at a story boundary at or after `from`.
  size_t pos = from == 0 ? 0 : text.find("\n\n", from);
  if (pos == std::string::npos) return stories;
  while (pos < text.size()) {
    while (pos < text.size() && (text[pos] == '\n' || text[pos] == '\r')) ++pos;
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    std::string story = text.substr(pos, end - pos);
    pos = end;
    for (auto& c : story)
      if (c == '\n' || c == '\r') c = ' ';
    std::vector<std::string> sentences;
    size_t s = 0;
    for (size_t i = 0; i < story.size(); ++i) {
      const char c = story[i];
      const bool stop = c == '.' || c == '!' || c == '?';
      if (stop && (i + 1 == story.size() || story[i + 1] == ' ' || story[i + 1] == '"')) {
        size_t e = i + 1;
        if (e < story.size() && story[e] == '"') ++e;
        std::string sent = story.substr(s, e - s);
        const auto b = sent.find_first_not_of(' ');
        if (b != std::string::npos) sentences.push_back(sent.substr(b));
        s = e;
        i = e - 1;
      }
    }
    if (s < story.size()) {
      const auto rest = story.substr(s);
      const auto b = rest.find_first_not_of(' ');
      if (b != std::string::npos) sentences.push_back(rest.substr(b));
    }
    if (sentences.size() >= 2) stories.push_back(std::move(sentences));
  }
  return stories;
}

nlohmann::json options_json(const WorkloadOptions& o) {
  return {{"sessions", o.sessions},
          {"seed", o.seed},
          {"sessions_per_s", o.sessions_per_s},
          {"mean_turns", o.mean_turns},
          {"max_turns", o.max_turns},
          {"turns_dist", o.turns_dist},
          {"turns_sigma", o.turns_sigma},
          {"think_s_mean", o.think_s_mean},
          {"think_dist", o.think_dist},
          {"think_sigma", o.think_sigma},
          {"prompt_sentences", {o.prompt_sentences_min, o.prompt_sentences_max}},
          {"response_sentences", {o.response_sentences_min, o.response_sentences_max}},
          {"text_begin_frac", o.text_begin_frac}};
}

}  // namespace

size_t Workload::num_turns() const {
  size_t n = 0;
  for (const auto& s : sessions) n += s.turns.size();
  return n;
}

Workload generate_workload(const WorkloadOptions& o, const std::string& text) {
  if (o.sessions <= 0 || o.sessions > 1000000) throw std::invalid_argument("workload: sessions must be in 1..1e6");
  if (!(o.sessions_per_s > 0) || !(o.think_s_mean >= 0)) throw std::invalid_argument("workload: rates must be positive");
  if (o.think_dist != "exponential" && o.think_dist != "lognormal")
    throw std::invalid_argument("workload: think time distribution must be exponential or lognormal");
  if (!(o.think_sigma > 0 && o.think_sigma <= 5)) throw std::invalid_argument("workload: think_sigma in (0, 5]");
  if (!(o.mean_turns >= 1) || o.max_turns < 1) throw std::invalid_argument("workload: mean_turns >= 1, max_turns >= 1");
  if (o.turns_dist != "geometric" && o.turns_dist != "lognormal")
    throw std::invalid_argument("workload: turn count distribution must be geometric or lognormal");
  if (!(o.turns_sigma > 0 && o.turns_sigma <= 5)) throw std::invalid_argument("workload: turns_sigma in (0, 5]");
  if (o.turns_dist == "lognormal" && !(o.mean_turns > 1))
    throw std::invalid_argument("workload: lognormal turn counts need mean_turns > 1");
  if (o.prompt_sentences_min < 1 || o.prompt_sentences_max < o.prompt_sentences_min ||
      o.response_sentences_min < 1 || o.response_sentences_max < o.response_sentences_min)
    throw std::invalid_argument("workload: bad sentence ranges");
  if (!(o.text_begin_frac >= 0 && o.text_begin_frac < 1)) throw std::invalid_argument("workload: text_begin_frac in [0, 1)");
  const auto stories = split_stories(text, static_cast<size_t>(o.text_begin_frac * text.size()));
  if (stories.size() < 2) throw std::invalid_argument("workload: the text holds too few stories");

  std::mt19937_64 rng(o.seed);
  std::exponential_distribution<double> gap(o.sessions_per_s);
  std::geometric_distribution<int> extra_turns(1.0 / o.mean_turns);  // turns = 1 + extra: mean = mean_turns
  std::uniform_int_distribution<int> prompt_n(o.prompt_sentences_min, o.prompt_sentences_max);
  std::uniform_int_distribution<int> resp_n(o.response_sentences_min, o.response_sentences_max);
  std::uniform_int_distribution<size_t> pick_story(0, stories.size() - 1);

  const bool lognormal = o.think_dist == "lognormal";
  // Lognormal with mean think_s_mean: mu = ln(mean) - sigma^2 / 2.
  const double mu = o.think_s_mean > 0 ? std::log(o.think_s_mean) - 0.5 * o.think_sigma * o.think_sigma : 0.0;
  auto think = [&](std::mt19937_64& g) {
    if (!(o.think_s_mean > 0)) return 0.0;
    if (lognormal) return std::lognormal_distribution<double>(mu, o.think_sigma)(g);
    return std::exponential_distribution<double>(1.0 / o.think_s_mean)(g);
  };

  Workload w;
  w.seed = o.seed;
  w.options = o;
  double t = 0;
  for (int id = 0; id < o.sessions; ++id) {
    t += gap(rng);
    Session s;
    s.id = id;
    s.arrival_s = t;
    int drawn = 0;
    if (o.turns_dist == "lognormal") {
      // 1 + floor(X) has mean ~ E[X] + 0.5 = mean_turns (before the cap).
      const double tmu = std::log(o.mean_turns - 0.5) - 0.5 * o.turns_sigma * o.turns_sigma;
      drawn = 1 + static_cast<int>(std::min(1e6, std::lognormal_distribution<double>(tmu, o.turns_sigma)(rng)));
    } else {
      drawn = 1 + extra_turns(rng);
    }
    const int turns = std::min(o.max_turns, drawn);
    size_t story = pick_story(rng), sent = 0;
    auto take = [&](int n) {
      std::string out;
      for (int i = 0; i < n; ++i) {
        if (sent >= stories[story].size()) story = (story + 1) % stories.size(), sent = 0;
        if (!out.empty()) out += ' ';
        out += stories[story][sent++];
      }
      return out;
    };
    double at = t;
    for (int k = 0; k < turns; ++k) {
      if (k > 0) at += think(rng);
      Turn turn;
      turn.time_s = at;
      turn.prompt = take(prompt_n(rng));
      turn.response = take(resp_n(rng));
      s.turns.push_back(std::move(turn));
    }
    w.sessions.push_back(std::move(s));
  }
  return w;
}

void save_workload(const Workload& w, const std::string& path) {
  nlohmann::json j;
  j["format"] = "kvstream-workload/1";
  j["seed"] = w.seed;
  j["options"] = options_json(w.options);
  j["sessions"] = nlohmann::json::array();
  for (const auto& s : w.sessions) {
    nlohmann::json js{{"id", s.id}, {"arrival_s", s.arrival_s}, {"turns", nlohmann::json::array()}};
    for (const auto& t : s.turns)
      js["turns"].push_back({{"time_s", t.time_s}, {"prompt", t.prompt}, {"response", t.response}});
    j["sessions"].push_back(std::move(js));
  }
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write workload " + path);
  f << j.dump(1) << "\n";
  if (!f) throw std::runtime_error("failed writing workload " + path);
}

Workload load_workload(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open workload " + path);
  try {
    const nlohmann::json j = nlohmann::json::parse(f);
    if (j.at("format").get<std::string>() != "kvstream-workload/1")
      throw std::runtime_error("unknown format '" + j.at("format").get<std::string>() + "'");
    Workload w;
    w.seed = j.at("seed").get<uint64_t>();
    if (j.contains("options")) {
      const auto& o = j["options"];
      w.options.sessions = o.value("sessions", 0);
      w.options.seed = o.value("seed", uint64_t{0});
      w.options.sessions_per_s = o.value("sessions_per_s", 0.0);
      w.options.mean_turns = o.value("mean_turns", 0.0);
      w.options.turns_dist = o.value("turns_dist", std::string("geometric"));
      w.options.turns_sigma = o.value("turns_sigma", 1.5);
      w.options.think_s_mean = o.value("think_s_mean", 0.0);
      w.options.think_dist = o.value("think_dist", std::string("exponential"));
      w.options.think_sigma = o.value("think_sigma", 1.5);
      w.options.text_begin_frac = o.value("text_begin_frac", 0.0);
    }
    for (const auto& js : j.at("sessions")) {
      Session s;
      s.id = js.at("id").get<int>();
      s.arrival_s = js.at("arrival_s").get<double>();
      for (const auto& jt : js.at("turns")) {
        Turn t;
        t.time_s = jt.at("time_s").get<double>();
        t.prompt = jt.at("prompt").get<std::string>();
        t.response = jt.at("response").get<std::string>();
        if (!std::isfinite(t.time_s)) throw std::runtime_error("turn time is not finite");
        s.turns.push_back(std::move(t));
      }
      if (s.turns.empty()) throw std::runtime_error("session " + std::to_string(s.id) + " has no turns");
      w.sessions.push_back(std::move(s));
    }
    if (w.sessions.empty()) throw std::runtime_error("no sessions");
    return w;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("workload " + path + ": " + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("workload " + path + ": " + e.what());
  }
}

}  // namespace kvstream::store
