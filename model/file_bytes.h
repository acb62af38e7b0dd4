// read_file_bytes: reads a whole (regular) file into memory, with a clear error when it cannot.
// Internal helper of model/ (checkpoint and tokenizer loaders).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvstream::model {

// Throws std::runtime_error("<what> <path>: ...") when the file cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path, const std::string& what);

}  // namespace kvstream::model
