# Runs a libFuzzer binary for SECONDS over a fresh copy of the seed corpus SEEDS (in WORK).
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
file(GLOB _seeds "${SEEDS}/*")
file(COPY ${_seeds} DESTINATION "${WORK}")
execute_process(
  COMMAND "${FUZZER}" -max_total_time=${SECONDS} -dict=${DICT} -max_len=4096 -timeout=10 -rss_limit_mb=2048
          -print_final_stats=1 "${WORK}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzzer ${FUZZER} failed (exit ${rc}); the crashing input is in the working folder")
endif()
