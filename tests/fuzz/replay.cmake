# Regression replay of the fuzz harnesses in the normal builds (any compiler, no libFuzzer):
# each tests/fuzz/fuzz_<name>.c is linked with replay.c into replay_<name>, and CTest test
# fuzz-replay/<name> feeds it every file of tests/fuzz/corpus/<name>/ (seeds) and
# tests/fuzz/regressions/<name>/ (minimized crashers). Included from tests/CMakeLists.txt.
set(FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
file(GLOB FUZZ_REPLAY_HARNESSES CONFIGURE_DEPENDS ${FUZZ_DIR}/fuzz_*.c)
foreach(src ${FUZZ_REPLAY_HARNESSES})
  get_filename_component(harness ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" name ${harness})
  add_executable(replay_${name} ${FUZZ_DIR}/replay.c ${src})
  target_link_libraries(replay_${name} PRIVATE ebsdcore)
  set_target_properties(replay_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY
    ${PROJECT_BINARY_DIR}/tests/fuzz)
  add_test(NAME fuzz-replay/${name}
    COMMAND replay_${name} ${FUZZ_DIR}/corpus/${name} ${FUZZ_DIR}/regressions/${name})
  set_tests_properties(fuzz-replay/${name} PROPERTIES TIMEOUT 300)
endforeach()
