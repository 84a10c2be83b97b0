#include <mixq/mixq.hpp>

#include <type_traits>

const char* mixq_odr_other_version() { return mixq::version_string; }

// The umbrella header is complete: the JSON format, the mixq-search program and nn checkpoints come with it.
static_assert(std::is_function_v<decltype(mixq::search::parse_problem)>);
static_assert(std::is_function_v<decltype(mixq::search::problem_to_json)>);
static_assert(std::is_function_v<decltype(mixq::search::run_cli)>);
static_assert(std::is_function_v<decltype(mixq::nn::save_checkpoint)>);
static_assert(std::is_function_v<decltype(mixq::nn::load_checkpoint)>);
