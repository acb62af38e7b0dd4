// File helpers of model/: whole-file reads with clear errors (checkpoint, tokenizer, text files).
// Internal helper of model/ (checkpoint and tokenizer loaders).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvstream::model {

// Throws kvstream::Error("cannot open <what> <path>: ...") when the file cannot be opened or read:
// kNotFound when it does not exist, kInvalidArgument for a directory or other non-file, kIo else.
std::vector<uint8_t> read_file_bytes(const std::string& path, const std::string& what);

}  // namespace kvstream::model

namespace kvstream::model {
// Reads a text file (at most max_bytes; larger files are rejected) for encoding.
std::string read_text_file(const std::string& path, size_t max_bytes = size_t(256) << 20);
}  // namespace kvstream::model
