// model_args.h: the --model / --tokenizer options of every command that runs the reference model,
// and loading them, so that each command neither repeats the options nor forgets the check that
// the tokenizer belongs to the model.
// Contract: load_model() throws (std::runtime_error / std::invalid_argument, from model/) on an
// unreadable file or when the tokenizer's vocabulary differs from the model's.
#pragma once
#include <string>

#include <CLI/CLI.hpp>

#include "model/model.h"
#include "model/tokenizer.h"

namespace kvstream::cli {

inline void add_model_args(CLI::App& sub, std::string& model, std::string& tokenizer) {
  sub.add_option("--model", model, "llama2.c checkpoint (data/models/stories260K/stories260K.bin)")->required();
  sub.add_option("--tokenizer", tokenizer, "llama2.c tokenizer (data/models/stories260K/tok512.bin)")->required();
}

struct LoadedModel {
  model::Model model;
  model::Tokenizer tokenizer;
};

inline LoadedModel load_model(const std::string& model_path, const std::string& tokenizer_path) {
  LoadedModel l{model::Model::load(model_path), model::Tokenizer::load(tokenizer_path)};
  model::check_tokenizer(l.model, l.tokenizer);
  return l;
}

}  // namespace kvstream::cli
