# Install rules and the CMake package: `cmake --install build --prefix P` puts the static
# libraries in P/lib, the public headers (include/kvstream/, version.h included) in P/include,
# the kvstream command in P/bin, and P/lib/cmake/kvstream/ (kvstreamConfig.cmake, its version
# file, the exported targets) so that a consumer writes
#   find_package(kvstream 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE kvstream::kvstream)
# Internal headers are not installed: a consumer sees only include/kvstream/.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KVSTREAM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kvstream)
get_property(KVSTREAM_LAYERS GLOBAL PROPERTY KVSTREAM_LAYERS)
install(TARGETS ${KVSTREAM_LAYERS} kvstream_umbrella EXPORT kvstreamTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET kvstream)
  install(TARGETS kvstream RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/kvstream DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(FILES ${KVSTREAM_GENERATED_INCLUDE_DIR}/kvstream/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kvstream)
install(EXPORT kvstreamTargets NAMESPACE kvstream:: DESTINATION ${KVSTREAM_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/kvstreamConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/kvstreamConfig.cmake
                              INSTALL_DESTINATION ${KVSTREAM_CMAKE_DIR})
# 0.x: a minor version may change the API, so a request for 0.1 accepts 0.1.* only.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kvstreamConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kvstreamConfig.cmake ${PROJECT_BINARY_DIR}/kvstreamConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/kvstreamZstd.cmake ${PROJECT_SOURCE_DIR}/cmake/kvstreamHiredis.cmake
        DESTINATION ${KVSTREAM_CMAKE_DIR})
