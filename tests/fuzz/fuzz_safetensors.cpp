// libFuzzer target: any byte string given to the safetensors reader and the quantized-model reader either
// parses or throws mixq::error; anything else (a crash, a sanitizer report, another exception type, a leak)
// is a bug.
#include <mixq/io/safetensors.hpp>
#include <mixq/quant.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const mixq::io::SafetensorsFile f =
        mixq::io::SafetensorsFile::parse(std::vector<std::uint8_t>(data, data + size), "fuzz");
    for (const mixq::io::TensorInfo& t : f.tensors()) {
      try {
        const mixq::io::FloatTensor v = f.read_float(t.name);
        if (static_cast<std::int64_t>(v.values.size()) != t.numel()) __builtin_trap();
      } catch (const mixq::error&) {
      }
    }
    try {
      const mixq::io::QuantizedModel m = mixq::io::read_quantized_model(f);
      for (const auto& entry : m.quantized) {
        const mixq::QuantizedTensor& q = entry.second;
        const std::vector<std::int32_t> codes = q.codes();
        for (std::int32_t c : codes)
          if (c < q.spec().qmin() || c > q.spec().qmax()) __builtin_trap();
        (void)q.dequantize();
      }
    } catch (const mixq::error&) {
    }
  } catch (const mixq::error&) {
  }
  return 0;
}
