// The CLI explains itself: every subcommand's --help (nested groups like `bench codec` included)
// gives every option a description and shows the default of every option that takes a value and
// is not required; `kvstream --version` and `kvstream version` print the project version.
#include <catch2/catch.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "kvstream/version.h"
#include "tests/cli/shell.h"
#include "tests/test_data.h"

using kvstream::testing::quote;

namespace {

std::string help_of(const std::vector<std::string>& path) {
  std::string cmd = quote(kvstream::testing::kvstream_bin());
  for (const auto& p : path) cmd += " " + p;
  const auto [code, out] = kvstream::testing::shell(cmd + " --help 2>&1");
  INFO(cmd << " --help");
  REQUIRE(code == 0);
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// One entry of a help section: "  NAMES [TYPE[=DEFAULT]] [REQUIRED]   description". CLI11 pads
// the left column to 30 characters and moves the description to the next line (indented by 30)
// when the left column is longer.
struct HelpEntry {
  std::string left, description;
};
constexpr size_t kColumn = 30;

std::vector<HelpEntry> entries(const std::vector<std::string>& lines, const std::string& section) {
  std::vector<HelpEntry> out;
  bool in = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (!l.empty() && l[0] != ' ') {
      in = l == section;
      continue;
    }
    if (!in || l.size() < 3 || l[0] != ' ' || l[1] != ' ' || l[2] == ' ') continue;
    HelpEntry e;
    if (i + 1 < lines.size() && lines[i + 1].compare(0, kColumn, std::string(kColumn, ' ')) == 0) {
      e.left = l;
      e.description = lines[++i].substr(kColumn);
    } else {
      e.left = l.substr(0, std::min(l.size(), kColumn));
      e.description = l.size() > kColumn ? l.substr(kColumn) : "";
    }
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(' '));
      s.erase(s.find_last_not_of(' ') + 1);
      return s;
    };
    e.left = trim(e.left);
    e.description = trim(e.description);
    out.push_back(e);
  }
  return out;
}

// Every leaf command path, found by walking "Subcommands:" from the top.
void walk(const std::vector<std::string>& path, std::vector<std::vector<std::string>>& leaves) {
  const auto subs = entries(lines_of(help_of(path)), "Subcommands:");
  if (subs.empty()) leaves.push_back(path);
  for (const auto& s : subs) {
    auto p = path;
    p.push_back(s.left.substr(0, s.left.find(' ')));
    walk(p, leaves);
  }
}

}  // namespace

TEST_CASE("every subcommand's --help describes every option and shows its default", "[cli][help]") {
  std::vector<std::vector<std::string>> leaves;
  walk({}, leaves);
  std::vector<std::string> names;
  for (const auto& p : leaves) {
    std::string n;
    for (const auto& s : p) n += (n.empty() ? "" : " ") + s;
    names.push_back(n);
  }
  // The walk reaches nested groups (and sees the whole tree, not one level).
  for (const char* expected : {"bench codec", "bench stream", "store put", "store get", "netsim run", "workload gen",
                               "profile", "eval", "replay", "relay", "version"})
    CHECK(std::find(names.begin(), names.end(), expected) != names.end());
  REQUIRE(leaves.size() >= 25);

  // A value-taking option shows "=DEFAULT" right after its type label (TYPE, TYPE:{a,b} or
  // TYPE:SIZE [...]); one whose default is "not given" says what that means with "default:".
  const std::regex type_label("^[A-Z]");
  const std::regex shown_default("(^|[A-Z}\\]])=[^ ]");
  size_t options = 0;
  for (size_t k = 0; k < leaves.size(); ++k) {
    const auto lines = lines_of(help_of(leaves[k]));
    for (const char* section : {"Options:", "Positionals:"}) {
      for (const auto& e : entries(lines, section)) {
        INFO("kvstream " << names[k] << ": " << e.left << "   " << e.description);
        ++options;
        CHECK(!e.description.empty());
        const auto space = e.left.find(' ');
        const std::string rest = space == std::string::npos ? "" : e.left.substr(space + 1);
        const bool flag = !std::regex_search(rest, type_label);
        const bool required = rest.find("REQUIRED") != std::string::npos;
        if (flag || required) continue;
        const bool has_default = std::regex_search(rest, shown_default) ||
                                 e.description.find("default:") != std::string::npos;
        CHECK(has_default);
      }
    }
  }
  CHECK(options > 200);
}

TEST_CASE("kvstream --version and kvstream version print the project version", "[cli][help]") {
  const std::string bin = quote(kvstream::testing::kvstream_bin());
  const auto [code, out] = kvstream::testing::shell(bin + " --version");
  CHECK(code == 0);
  CHECK(out.rfind(std::string("kvstream ") + KVSTREAM_VERSION + "\n", 0) == 0);
  CHECK(std::string(KVSTREAM_VERSION) == std::to_string(KVSTREAM_VERSION_MAJOR) + "." +
                                             std::to_string(KVSTREAM_VERSION_MINOR) + "." +
                                             std::to_string(KVSTREAM_VERSION_PATCH));
  CHECK(KVSTREAM_VERSION_NUMBER == KVSTREAM_VERSION_MAJOR * 10000 + KVSTREAM_VERSION_MINOR * 100 + KVSTREAM_VERSION_PATCH);
  const auto [vcode, vout] = kvstream::testing::shell(bin + " version");
  CHECK(vcode == 0);
  CHECK(vout == out);  // one implementation
}

TEST_CASE("errors name the file and say what to do", "[cli][help]") {
  const std::string bin = quote(kvstream::testing::kvstream_bin());
  const std::string model = quote(kvstream::testing::model_path()), tok = quote(kvstream::testing::tokenizer_path());
  struct Case {
    std::string args, file, hint;
    int code;  // the error class's exit code (cli/exit_code.h)
  };
  for (const Case& c : std::vector<Case>{
           {"generate --model no/such.bin --tokenizer " + tok + " --prompt x", "no/such.bin", "data/README.md", 12},
           {"prefill --model " + model + " --tokenizer " + tok + " --text-file no/text.txt -o x.st", "no/text.txt", "data/", 12},
           {"generate --model " + tok + " --tokenizer " + tok + " --prompt x", kvstream::testing::tokenizer_path(),
            "`kvstream generate --help`", 14},
           {"kv-info " + model, kvstream::testing::model_path(), "`kvstream kv-info --help`", 14},
           {"store put --dir no/store --kvs " + model, kvstream::testing::model_path(), "`kvstream store put --help`", 14},
           {"decode no/ctx.kvs -o x.st", "no/ctx.kvs", "data/", 12},
       }) {
    const auto [code, out] = kvstream::testing::shell(bin + " " + c.args + " 2>&1");
    INFO("kvstream " << c.args << "\n" << out);
    CHECK(code == c.code);
    CHECK_THAT(out, Catch::Contains("kvstream: error (") && Catch::Contains(c.file) &&
                        Catch::Contains("kvstream: hint: ") && Catch::Contains(c.hint));
  }
}
