# Builds and runs tests/consumer in WORK_DIR. MODE=find_package installs mixq into WORK_DIR/prefix first.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_consumer_src "${MIXQ_SOURCE_DIR}/tests/consumer")

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGV}")
  endif()
endfunction()

set(_extra "")
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S "${MIXQ_SOURCE_DIR}" -B "${WORK_DIR}/mixq-build"
      -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix -DMIXQ_BUILD_TESTS=OFF -DMIXQ_BUILD_BENCHMARKS=OFF
      -DMIXQ_BUILD_EXAMPLES=OFF)
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/mixq-build")
  set(_extra "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
endif()
run(${CMAKE_COMMAND} -S "${_consumer_src}" -B "${WORK_DIR}/build" -DMODE=${MODE}
    -DMIXQ_SOURCE_DIR=${MIXQ_SOURCE_DIR} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} ${_extra})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer")
