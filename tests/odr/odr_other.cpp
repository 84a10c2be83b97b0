#include <mixq/mixq.hpp>

const char* mixq_odr_other_version() { return mixq::version_string; }
