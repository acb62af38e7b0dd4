# hiredis (Debian libhiredis-dev) as the imported target kvstream_hiredis::hiredis, for the store's
# Redis Cluster tier. Debian's HiredisConfig.cmake defines variables only, so the library and
# header are found directly. Used by the build and by the installed kvstreamConfig.cmake (the
# static kvstream::store needs it at link time).
if(NOT TARGET kvstream_hiredis::hiredis)
  find_path(KVSTREAM_HIREDIS_INCLUDE_DIR hiredis/hiredis.h REQUIRED)
  find_library(KVSTREAM_HIREDIS_LIBRARY hiredis REQUIRED)
  add_library(kvstream_hiredis::hiredis UNKNOWN IMPORTED)
  set_target_properties(kvstream_hiredis::hiredis PROPERTIES
    IMPORTED_LOCATION "${KVSTREAM_HIREDIS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${KVSTREAM_HIREDIS_INCLUDE_DIR}")
endif()
