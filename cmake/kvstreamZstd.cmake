# zstd as the imported target zstd::libzstd_shared. Debian's libzstd-dev ships zstd's own CMake
# package (zstdConfig.cmake), which defines it; where a zstd has no package, the library and
# header are found directly and the same target is made here. Used by the build and by the
# installed kvstreamConfig.cmake, so a consumer of the package gets the zstd kvstream was built with.
if(NOT TARGET zstd::libzstd_shared)
  find_package(zstd CONFIG QUIET)
endif()
if(NOT TARGET zstd::libzstd_shared)
  find_path(KVSTREAM_ZSTD_INCLUDE_DIR zstd.h REQUIRED)
  find_library(KVSTREAM_ZSTD_LIBRARY zstd REQUIRED)
  add_library(zstd::libzstd_shared UNKNOWN IMPORTED)
  set_target_properties(zstd::libzstd_shared PROPERTIES
    IMPORTED_LOCATION "${KVSTREAM_ZSTD_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${KVSTREAM_ZSTD_INCLUDE_DIR}")
endif()
