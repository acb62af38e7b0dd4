#include "model/file_bytes.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "kvstream/error.h"

namespace kvstream::model {

std::vector<uint8_t> read_file_bytes(const std::string& path, const std::string& what) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status))
    throw Error(ErrorCode::kNotFound, "cannot open " + what + " " + path + ": no such file");
  if (std::filesystem::is_directory(status))
    throw Error(ErrorCode::kInvalidArgument, "cannot open " + what + " " + path + ": it is a directory, not a file");
  if (!std::filesystem::is_regular_file(status))
    throw Error(ErrorCode::kInvalidArgument, "cannot open " + what + " " + path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, "cannot open " + what + " " + path + ": " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw Error(ErrorCode::kIo, "cannot read " + what + " " + path);
  in.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error(ErrorCode::kIo, "cannot read " + what + " " + path + ": short read");
  return bytes;
}

}  // namespace kvstream::model

namespace kvstream::model {
std::string read_text_file(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > max_bytes)
    throw std::runtime_error("text file " + path + " is " + std::to_string(size) + " bytes, over the " +
                             std::to_string(max_bytes) + "-byte limit");
  const auto bytes = read_file_bytes(path, "text file");
  return std::string(bytes.begin(), bytes.end());
}
}  // namespace kvstream::model
