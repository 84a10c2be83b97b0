#pragma once
/// @file
/// safetensors files: read float tensors (F32, F16, BF16, F64) into Eigen, and write / read a quantized model
/// (packed codes as U8 tensors, scales as F32, zero points as I32, each tensor's QuantSpec in `__metadata__`).
/// The quantized layout is described in docs/FORMAT.md. Needs nlohmann-json (`nlohmann/json.hpp`).
///
/// The reader trusts nothing: a header length past the end of the file, a header over 100 MB, a header that is
/// not a JSON object, an unknown dtype, a shape whose size disagrees with its byte range, offsets that overlap
/// or run past the data: each throws mixq::error naming the file, the tensor and the value. The writer checks
/// everything first, writes to a temporary file in the same folder and renames it over the target, so a failed
/// write never leaves a partial file.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "mixq/detail/eigen.hpp"
#include <nlohmann/json.hpp>

#include "mixq/error.hpp"
#include "mixq/quant/quantized_tensor.hpp"
#include "mixq/quant/spec.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mixq/io/safetensors.hpp assumes a little-endian host (safetensors data is little-endian)"
#endif

namespace mixq::io {

/// Element types of the safetensors format.
enum class Dtype : std::uint8_t { BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, F8_E4M3, F8_E5M2 };

/// Bytes per element of a dtype.
inline std::size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::BOOL: case Dtype::U8: case Dtype::I8: case Dtype::F8_E4M3: case Dtype::F8_E5M2: return 1;
    case Dtype::I16: case Dtype::U16: case Dtype::F16: case Dtype::BF16: return 2;
    case Dtype::I32: case Dtype::U32: case Dtype::F32: return 4;
    case Dtype::F64: case Dtype::I64: case Dtype::U64: return 8;
  }
  return 0;
}

/// The dtype's name in safetensors headers ("F32", "BF16", ...).
inline const char* to_string(Dtype d) {
  switch (d) {
    case Dtype::BOOL: return "BOOL";
    case Dtype::U8: return "U8";
    case Dtype::I8: return "I8";
    case Dtype::I16: return "I16";
    case Dtype::U16: return "U16";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
    case Dtype::I32: return "I32";
    case Dtype::U32: return "U32";
    case Dtype::F32: return "F32";
    case Dtype::F64: return "F64";
    case Dtype::I64: return "I64";
    case Dtype::U64: return "U64";
    case Dtype::F8_E4M3: return "F8_E4M3";
    case Dtype::F8_E5M2: return "F8_E5M2";
  }
  return "?";
}

/// One tensor entry of a safetensors header. begin/end are byte offsets into the data section.
struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  /// Number of elements.
  std::int64_t numel() const { return mixq::detail::shape_numel(shape); }
};

/// A float tensor read from a file: its shape (outermost first) and its values, row-major.
struct FloatTensor {
  Shape shape;
  std::vector<float> values;

  /// The values as a [rows, cols] row-major array: rank 2 as is, rank 1 as [1, n], rank 0 as [1, 1]; higher
  /// ranks as [shape[0], rest] (the weights' [Cout, ...] view).
  Eigen::Map<const RowMajorArrayXXf> array() const {
    Eigen::Index rows = 1;
    if (shape.size() >= 2) rows = static_cast<Eigen::Index>(shape[0]);
    const Eigen::Index n = static_cast<Eigen::Index>(values.size());
    return {values.data(), rows, rows == 0 ? 0 : n / rows};
  }
  /// The values as a rank-N row-major TensorMap; throws if the rank is not N.
  template <int N>
  Eigen::TensorMap<Eigen::Tensor<const float, N, Eigen::RowMajor>> tensor() const {
    if (static_cast<int>(shape.size()) != N) mixq::detail::fail("FloatTensor::tensor<", N, ">: the rank is ", shape.size());
    Eigen::array<Eigen::Index, N> dims;
    for (int i = 0; i < N; ++i) dims[static_cast<std::size_t>(i)] = static_cast<Eigen::Index>(shape[static_cast<std::size_t>(i)]);
    return Eigen::TensorMap<Eigen::Tensor<const float, N, Eigen::RowMajor>>(values.data(), dims);
  }
};

/// The largest header mixq reads (as the reference implementation: 100,000,000 bytes).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

namespace detail {

using mixq::detail::fail;

inline Dtype parse_dtype(const std::string& s, const std::string& where) {
  static const char* const names[] = {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32",
                                      "U32", "F32", "F64", "I64", "U64", "F8_E4M3", "F8_E5M2"};
  for (std::size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i)
    if (s == names[i]) return static_cast<Dtype>(i);
  fail(where, ": unknown dtype \"", s, "\"");
}

/// IEEE binary16 to binary32, exact (subnormals, infinities and NaN payloads included).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal half: normalise
    std::uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float bfloat16_to_float(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline std::uint64_t json_offset(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
    fail(where, ": expected a non-negative integer, got ", v.is_number() ? v.dump() : std::string("a ") + v.type_name());
  return v.get<std::uint64_t>();
}

inline std::vector<std::uint8_t> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("safetensors: cannot open \"", path, "\"");
  const std::streamoff size = in.tellg();
  if (size < 0) fail("safetensors: cannot read the size of \"", path, "\"");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) fail("safetensors: cannot read \"", path, "\"");
  return bytes;
}

}  // namespace detail

/// A parsed safetensors file held in memory. Every offset, shape and dtype is validated on parse.
class SafetensorsFile {
 public:
  /// Reads and validates the file at `path`.
  static SafetensorsFile load(const std::string& path) { return parse(detail::read_whole_file(path), path); }

  /// Validates the bytes of a whole file; `source` names it in error messages.
  static SafetensorsFile parse(std::vector<std::uint8_t> bytes, const std::string& source = "<memory>") {
    using detail::fail;
    SafetensorsFile f;
    f.source_ = source;
    if (bytes.size() < 8) fail("safetensors \"", source, "\": ", bytes.size(), " bytes, shorter than the 8-byte header length");
    std::uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[static_cast<std::size_t>(i)];
    if (header_len > max_header_bytes)
      fail("safetensors \"", source, "\": header length ", header_len, " exceeds the limit of ", max_header_bytes, " bytes");
    if (header_len > bytes.size() - 8)
      fail("safetensors \"", source, "\": header length ", header_len, " runs past the end of the file (",
           bytes.size(), " bytes)");
    if (header_len < 2) fail("safetensors \"", source, "\": header length ", header_len, " is too short for a JSON object");
    const char* hbegin = reinterpret_cast<const char*>(bytes.data() + 8);
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(hbegin, hbegin + header_len);
    } catch (const nlohmann::json::exception& e) {
      fail("safetensors \"", source, "\": the header is not valid JSON (", e.what(), ")");
    }
    if (!header.is_object()) fail("safetensors \"", source, "\": the header is a JSON ", header.type_name(), ", not an object");
    f.data_offset_ = 8 + header_len;
    const std::uint64_t data_size = bytes.size() - f.data_offset_;
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string where = "safetensors \"" + source + "\", entry \"" + it.key() + "\"";
      const nlohmann::json& v = it.value();
      if (it.key() == "__metadata__") {
        if (!v.is_object()) fail(where, ": expected an object of strings, got ", v.type_name());
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string())
            fail(where, ": value of \"", m.key(), "\" is a ", m.value().type_name(), ", not a string");
          f.metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      if (!v.is_object()) fail(where, ": expected an object, got ", v.type_name());
      const auto dt = v.find("dtype");
      const auto sh = v.find("shape");
      const auto off = v.find("data_offsets");
      if (dt == v.end() || !dt->is_string()) fail(where, ": missing or non-string \"dtype\"");
      if (sh == v.end() || !sh->is_array()) fail(where, ": missing or non-array \"shape\"");
      if (off == v.end() || !off->is_array() || off->size() != 2)
        fail(where, ": \"data_offsets\" must be an array of two integers");
      TensorInfo t;
      t.name = it.key();
      t.dtype = detail::parse_dtype(dt->get<std::string>(), where);
      std::uint64_t numel = 1;
      bool overflow = false;
      for (const nlohmann::json& e : *sh) {
        const std::uint64_t d = detail::json_offset(e, where + " shape");
        if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) overflow = true;
        if (d != 0 && numel > std::numeric_limits<std::uint64_t>::max() / d) overflow = true;
        numel = overflow ? 0 : numel * d;
        t.shape.push_back(static_cast<std::int64_t>(d));
      }
      // an empty extent makes the tensor empty whatever the other extents say
      const bool empty = std::find(t.shape.begin(), t.shape.end(), std::int64_t{0}) != t.shape.end();
      if (empty) numel = 0, overflow = false;
      if (overflow || numel > std::numeric_limits<std::uint64_t>::max() / dtype_size(t.dtype))
        fail(where, ": shape ", sh->dump(), " has too many elements");
      t.begin = detail::json_offset((*off)[0], where + " data_offsets[0]");
      t.end = detail::json_offset((*off)[1], where + " data_offsets[1]");
      if (t.begin > t.end) fail(where, ": data_offsets [", t.begin, ", ", t.end, "] are reversed");
      if (t.end > data_size)
        fail(where, ": data_offsets [", t.begin, ", ", t.end, "] run past the data (", data_size, " bytes)");
      if (t.end - t.begin != numel * dtype_size(t.dtype))
        fail(where, ": data_offsets [", t.begin, ", ", t.end, "] hold ", t.end - t.begin, " bytes, dtype ",
             to_string(t.dtype), " and shape ", sh->dump(), " need ", numel * dtype_size(t.dtype));
      f.tensors_.push_back(std::move(t));
    }
    std::sort(f.tensors_.begin(), f.tensors_.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
    const TensorInfo* prev = nullptr;
    for (const TensorInfo& t : f.tensors_) {
      if (t.begin == t.end) continue;
      if (prev != nullptr && t.begin < prev->end)
        fail("safetensors \"", source, "\": tensors \"", prev->name, "\" [", prev->begin, ", ", prev->end, ") and \"",
             t.name, "\" [", t.begin, ", ", t.end, ") overlap");
      prev = &t;
    }
    f.bytes_ = std::move(bytes);
    return f;
  }

  /// Where the file came from (its path, or the name given to parse()).
  const std::string& source() const { return source_; }
  /// The `__metadata__` entries (string to string).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Every tensor entry, in data order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// Whether a tensor of that name exists.
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  /// The entry of a tensor; throws mixq::error if there is none.
  const TensorInfo& info(const std::string& name) const {
    const TensorInfo* t = find(name);
    if (t == nullptr) mixq::detail::fail("safetensors \"", source_, "\": no tensor named \"", name, "\"");
    return *t;
  }
  /// The raw little-endian bytes of a tensor (info(name).end - info(name).begin of them).
  const std::uint8_t* data(const std::string& name) const { return bytes_.data() + data_offset_ + info(name).begin; }

  /// A floating-point tensor (F32, F16, BF16 or F64) converted to float; throws for any other dtype.
  FloatTensor read_float(const std::string& name) const {
    const TensorInfo& t = info(name);
    FloatTensor out;
    out.shape = t.shape;
    const std::size_t n = static_cast<std::size_t>(t.numel());
    out.values.resize(n);
    const std::uint8_t* p = bytes_.data() + data_offset_ + t.begin;
    switch (t.dtype) {
      case Dtype::F32:
        if (n != 0) std::memcpy(out.values.data(), p, n * 4);
        break;
      case Dtype::F64:
        for (std::size_t i = 0; i < n; ++i) {
          double d;
          std::memcpy(&d, p + 8 * i, 8);
          out.values[i] = static_cast<float>(d);
        }
        break;
      case Dtype::F16:
      case Dtype::BF16:
        for (std::size_t i = 0; i < n; ++i) {
          const std::uint16_t h = static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
          out.values[i] = t.dtype == Dtype::F16 ? detail::half_to_float(h) : detail::bfloat16_to_float(h);
        }
        break;
      default:
        mixq::detail::fail("safetensors \"", source_, "\": tensor \"", name, "\" has dtype ", to_string(t.dtype),
                           ", not a float type (F32, F16, BF16, F64)");
    }
    return out;
  }

  /// A float tensor as a [rows, cols] row-major array (see FloatTensor::array()).
  RowMajorArrayXXf read_array(const std::string& name) const { return read_float(name).array(); }

  /// A float tensor of rank N as an Eigen row-major tensor; throws if the rank differs.
  template <int N>
  Eigen::Tensor<float, N, Eigen::RowMajor> read_tensor(const std::string& name) const {
    const FloatTensor t = read_float(name);
    return t.tensor<N>();
  }

 private:
  const TensorInfo* find(const std::string& name) const {
    for (const TensorInfo& t : tensors_)
      if (t.name == name) return &t;
    return nullptr;
  }

  std::string source_;
  std::vector<std::uint8_t> bytes_;
  std::uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// Reads every tensor of a safetensors file as float (each must be F32, F16, BF16 or F64).
inline std::map<std::string, FloatTensor> read_safetensors(const std::string& path) {
  const SafetensorsFile f = SafetensorsFile::load(path);
  std::map<std::string, FloatTensor> out;
  for (const TensorInfo& t : f.tensors()) out.emplace(t.name, f.read_float(t.name));
  return out;
}

/// A compressed model: quantized tensors, tensors kept in float32 (biases, BatchNorm), and free-form metadata.
struct QuantizedModel {
  std::map<std::string, QuantizedTensor> quantized;
  std::map<std::string, FloatTensor> floats;
  /// User metadata; keys starting with "mixq." are reserved for the format.
  std::map<std::string, std::string> metadata;
};

/// Format identifier stored under `__metadata__["mixq.format"]`.
inline constexpr const char* quantized_format_name = "mixq.quantized-safetensors.v1";

namespace detail {

inline nlohmann::json spec_to_json(const QuantizedTensor& t) {
  const QuantSpec& s = t.spec();
  nlohmann::json j;
  j["shape"] = t.shape();
  j["bit_width"] = s.bit_width;
  j["signed"] = s.is_signed;
  j["symmetric"] = s.symmetric;
  j["narrow_range"] = s.narrow_range;
  j["granularity"] = mixq::to_string(s.granularity);
  j["axis"] = s.axis;
  j["group_size"] = s.group_size;
  j["scale_restriction"] = mixq::to_string(s.scale_restriction);
  j["packing"] = "lsb_first";
  if (s.binary) j["binary"] = true;  // written only for binary specs: other files are unchanged
  return j;
}

template <class T>
T json_field(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) fail(where, ": missing field \"", key, "\"");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(where, ": field \"", key, "\" has the wrong type (", it->type_name(), ")");
  }
}

inline void spec_from_json(const std::string& text, const std::string& where, QuantSpec& spec, Shape& shape) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": the spec is not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(where, ": the spec is not a JSON object");
  const auto sh = j.find("shape");
  if (sh == j.end() || !sh->is_array()) fail(where, ": missing or non-array \"shape\"");
  shape.clear();
  for (const nlohmann::json& e : *sh) shape.push_back(static_cast<std::int64_t>(json_offset(e, where + " shape")));
  const auto bits = json_field<std::int64_t>(j, "bit_width", where);
  if (bits < 1 || bits > 16) fail(where, ": bit_width must be in [1, 16], got ", bits);
  spec.bit_width = static_cast<int>(bits);
  spec.is_signed = json_field<bool>(j, "signed", where);
  spec.symmetric = json_field<bool>(j, "symmetric", where);
  spec.narrow_range = json_field<bool>(j, "narrow_range", where);
  const auto g = json_field<std::string>(j, "granularity", where);
  if (g == "per_tensor") spec.granularity = Granularity::per_tensor;
  else if (g == "per_channel") spec.granularity = Granularity::per_channel;
  else if (g == "per_group") spec.granularity = Granularity::per_group;
  else fail(where, ": unknown granularity \"", g, "\"");
  const auto axis = json_field<std::int64_t>(j, "axis", where);
  if (axis < -64 || axis > 64) fail(where, ": axis ", axis, " is out of range");
  spec.axis = static_cast<int>(axis);
  spec.group_size = json_field<std::int64_t>(j, "group_size", where);
  const auto r = json_field<std::string>(j, "scale_restriction", where);
  if (r == "free") spec.scale_restriction = ScaleRestriction::free;
  else if (r == "power_of_two") spec.scale_restriction = ScaleRestriction::power_of_two;
  else fail(where, ": unknown scale_restriction \"", r, "\"");
  const auto packing = json_field<std::string>(j, "packing", where);
  if (packing != "lsb_first") fail(where, ": unknown packing \"", packing, "\"");
  spec.binary = j.contains("binary") ? json_field<bool>(j, "binary", where) : false;  // optional, default false
}

struct PendingTensor {
  std::string name;
  Dtype dtype;
  Shape shape;
  const void* data;
  std::size_t bytes;
};

inline std::string temporary_name(const std::string& path) {
  std::random_device rd;
  const unsigned long long tag = (static_cast<unsigned long long>(rd()) << 32) ^ rd();
  char buf[32];
  std::snprintf(buf, sizeof buf, ".tmp%016llx", tag);
  return path + buf;
}

/// Writes a safetensors file atomically (temporary file, then rename). Names must be unique.
inline void write_safetensors_file(const std::string& path, std::vector<PendingTensor> tensors,
                                   const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(), [](const PendingTensor& a, const PendingTensor& b) { return a.name < b.name; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const PendingTensor& t : tensors) {
    if (header.contains(t.name)) fail("safetensors write \"", path, "\": two tensors are named \"", t.name, "\"");
    header[t.name] = {{"dtype", to_string(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes}}};
    offset += t.bytes;
  }
  std::string text = header.dump();
  text.append((8 - (text.size() % 8)) % 8, ' ');  // keeps the data section 8-byte aligned
  const std::string tmp = temporary_name(path);
  std::FILE* out = std::fopen(tmp.c_str(), "wb");
  if (out == nullptr) fail("safetensors write: cannot create \"", tmp, "\"");
  bool ok = true;
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(text.size()) >> (8 * i));
  ok = ok && std::fwrite(len, 1, 8, out) == 8;
  ok = ok && std::fwrite(text.data(), 1, text.size(), out) == text.size();
  for (const PendingTensor& t : tensors)
    ok = ok && (t.bytes == 0 || std::fwrite(t.data, 1, t.bytes, out) == t.bytes);
  ok = (std::fclose(out) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("safetensors write: cannot write \"", path, "\"");
  }
}

}  // namespace detail

/// Writes a compressed model: for every quantized tensor `w`, the U8 tensor `w.codes` (packed codes, shape
/// [bytes]), the F32 tensor `w.scales` and the I32 tensor `w.zero_points` (shape [groups]), and the metadata
/// entry `mixq.quant.w` (the QuantSpec and the logical shape as a JSON string); float tensors as F32. See
/// docs/FORMAT.md. Everything is validated before the file is created; the file appears complete or not at all.
inline void write_quantized_model(const std::string& path, const QuantizedModel& model) {
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : model.metadata) {
    if (k.rfind("mixq.", 0) == 0) mixq::detail::fail("write_quantized_model: metadata key \"", k, "\" uses the reserved prefix \"mixq.\"");
    meta[k] = v;
  }
  meta["mixq.format"] = quantized_format_name;
  std::vector<detail::PendingTensor> pending;
  for (const auto& [name, t] : model.quantized) {
    if (name.empty()) mixq::detail::fail("write_quantized_model: a quantized tensor has an empty name");
    if (static_cast<std::int64_t>(t.scales().size()) != mixq::detail::num_params(t.spec(), t.shape()) ||
        t.packed_codes().size() != mixq::detail::packed_size(t.numel(), t.bit_width()))
      mixq::detail::fail("write_quantized_model: quantized tensor \"", name, "\" is empty or inconsistent");
    meta["mixq.quant." + name] = detail::spec_to_json(t).dump();
    pending.push_back({name + ".codes", Dtype::U8, {static_cast<std::int64_t>(t.packed_codes().size())},
                       t.packed_codes().data(), t.packed_codes().size()});
    const auto groups = static_cast<std::int64_t>(t.scales().size());
    pending.push_back({name + ".scales", Dtype::F32, {groups}, t.scales().data(), t.scales().size() * 4});
    pending.push_back({name + ".zero_points", Dtype::I32, {groups}, t.zero_points().data(), t.zero_points().size() * 4});
  }
  for (const auto& [name, t] : model.floats) {
    if (name.empty() || name == "__metadata__") mixq::detail::fail("write_quantized_model: invalid float tensor name \"", name, "\"");
    if (mixq::detail::shape_numel(t.shape, "write_quantized_model float tensor") != static_cast<std::int64_t>(t.values.size()))
      mixq::detail::fail("write_quantized_model: float tensor \"", name, "\" has ", t.values.size(),
                         " values, its shape needs ", mixq::detail::shape_numel(t.shape));
    pending.push_back({name, Dtype::F32, t.shape, t.values.data(), t.values.size() * 4});
  }
  detail::write_safetensors_file(path, std::move(pending), meta);
}

/// Rebuilds a compressed model from a parsed file written by write_quantized_model (or any writer of the
/// same layout). Tensors not claimed by a `mixq.quant.*` entry are read as float tensors.
inline QuantizedModel read_quantized_model(const SafetensorsFile& f) {
  using mixq::detail::fail;
  QuantizedModel m;
  const auto fmt = f.metadata().find("mixq.format");
  if (fmt == f.metadata().end()) {
    const auto kind = f.metadata().find("mixq.kind");
    if (kind != f.metadata().end() && kind->second == "checkpoint")
      fail("read_quantized_model \"", f.source(), "\": this is a training checkpoint (float tensors, read it with ",
           "nn::load_checkpoint), not a quantized model (write one with nn::save_quantized_model)");
    fail("read_quantized_model \"", f.source(), "\": no \"mixq.format\" metadata entry");
  }
  if (fmt->second != quantized_format_name)
    fail("read_quantized_model \"", f.source(), "\": unknown format \"", fmt->second, "\"");
  std::vector<std::string> claimed;
  const std::string prefix = "mixq.quant.";
  for (const auto& [key, value] : f.metadata()) {
    if (key.rfind("mixq.", 0) != 0) {
      m.metadata[key] = value;
      continue;
    }
    if (key.rfind(prefix, 0) != 0) continue;
    const std::string name = key.substr(prefix.size());
    const std::string where = "read_quantized_model \"" + f.source() + "\", tensor \"" + name + "\"";
    QuantSpec spec;
    Shape shape;
    detail::spec_from_json(value, where, spec, shape);
    auto expect = [&](const std::string& tname, Dtype dtype) -> const TensorInfo& {
      if (!f.contains(tname)) fail(where, ": missing tensor \"", tname, "\"");
      const TensorInfo& t = f.info(tname);
      if (t.dtype != dtype) fail(where, ": tensor \"", tname, "\" has dtype ", to_string(t.dtype), ", expected ", to_string(dtype));
      if (t.shape.size() != 1) fail(where, ": tensor \"", tname, "\" has rank ", t.shape.size(), ", expected 1");
      claimed.push_back(tname);
      return t;
    };
    const TensorInfo& codes = expect(name + ".codes", Dtype::U8);
    const TensorInfo& scales = expect(name + ".scales", Dtype::F32);
    const TensorInfo& zps = expect(name + ".zero_points", Dtype::I32);
    std::vector<std::uint8_t> packed(f.data(codes.name), f.data(codes.name) + codes.numel());
    std::vector<float> s(static_cast<std::size_t>(scales.numel()));
    std::vector<std::int32_t> z(static_cast<std::size_t>(zps.numel()));
    if (!s.empty()) std::memcpy(s.data(), f.data(scales.name), s.size() * 4);
    if (!z.empty()) std::memcpy(z.data(), f.data(zps.name), z.size() * 4);
    try {
      m.quantized.emplace(name, QuantizedTensor::from_packed(shape, spec, std::move(s), std::move(z), std::move(packed)));
    } catch (const mixq::error& e) {
      fail(where, ": ", e.what());
    }
  }
  for (const TensorInfo& t : f.tensors())
    if (std::find(claimed.begin(), claimed.end(), t.name) == claimed.end()) m.floats.emplace(t.name, f.read_float(t.name));
  return m;
}

/// Reads a compressed model written by write_quantized_model; codes, scales, zero points, specs, float
/// tensors and user metadata come back identical.
inline QuantizedModel read_quantized_model(const std::string& path) {
  return read_quantized_model(SafetensorsFile::load(path));
}

// ---------------------------------------------------------------------------------------------------------------
// Float tensors: from Eigen objects, and plain safetensors files (checkpoints, calibration data, anything float).

/// A FloatTensor of shape [rows, cols] holding a copy of an Eigen matrix or array of floats (any storage order,
/// any expression), row-major as safetensors stores it.
template <class Derived>
FloatTensor float_tensor(const Eigen::DenseBase<Derived>& x) {
  static_assert(std::is_same_v<typename Derived::Scalar, float>, "float_tensor: the Eigen object must hold floats");
  FloatTensor t;
  t.shape = {static_cast<std::int64_t>(x.rows()), static_cast<std::int64_t>(x.cols())};
  t.values.resize(static_cast<std::size_t>(x.size()));
  Eigen::Map<RowMajorArrayXXf>(t.values.data(), x.rows(), x.cols()) = x.derived().array();
  return t;
}

/// A FloatTensor holding a copy of an Eigen tensor of floats (Tensor, TensorMap or TensorRef of any rank and
/// layout), with the same shape, row-major (a ColMajor tensor is transposed into row-major order).
template <class T, int N, int Options, class IndexType>
FloatTensor float_tensor(const Eigen::Tensor<T, N, Options, IndexType>& x) {
  static_assert(std::is_same_v<std::remove_const_t<T>, float>, "float_tensor: the Eigen tensor must hold floats");
  FloatTensor t;
  for (int d = 0; d < N; ++d) t.shape.push_back(static_cast<std::int64_t>(x.dimension(d)));
  t.values.resize(static_cast<std::size_t>(x.size()));
  if constexpr ((Options & Eigen::RowMajor) != 0) {
    std::copy(x.data(), x.data() + x.size(), t.values.begin());
  } else {
    Eigen::array<Eigen::Index, N> dims;
    for (int d = 0; d < N; ++d) dims[static_cast<std::size_t>(d)] = static_cast<Eigen::Index>(x.dimension(d));
    Eigen::TensorMap<Eigen::Tensor<float, N, Eigen::RowMajor>>(t.values.data(), dims) = x.swap_layout().shuffle(
        [] {
          Eigen::array<Eigen::Index, N> p;
          for (int d = 0; d < N; ++d) p[static_cast<std::size_t>(d)] = N - 1 - d;
          return p;
        }());
  }
  return t;
}

/// float_tensor of a TensorMap (e.g. SafetensorsFile::read_tensor's or FloatTensor::tensor's view).
template <class PlainTensor, int MapOptions>
FloatTensor float_tensor(const Eigen::TensorMap<PlainTensor, MapOptions>& x) {
  using T = typename PlainTensor::Scalar;
  constexpr int N = PlainTensor::NumDimensions;
  static_assert(std::is_same_v<std::remove_const_t<T>, float>, "float_tensor: the Eigen tensor must hold floats");
  Eigen::Tensor<float, N, (PlainTensor::Layout & Eigen::RowMajor) ? Eigen::RowMajor : Eigen::ColMajor> copy = x;
  return float_tensor(copy);
}

/// Writes float tensors to a plain safetensors file (dtype F32), atomically (temporary file, then rename), with
/// `metadata` in `__metadata__`. The key "mixq.format" is refused: it marks quantized-model files
/// (write_quantized_model), which a float file is not. Every tensor is checked (name non-empty and not
/// "__metadata__", values matching the shape) before the file is created. read_safetensors reads it back exactly.
inline void write_safetensors(const std::string& path, const std::map<std::string, FloatTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  if (metadata.count("mixq.format"))
    mixq::detail::fail("write_safetensors \"", path, "\": the metadata key \"mixq.format\" marks quantized models ",
                       "(write_quantized_model), not float files");
  std::vector<detail::PendingTensor> pending;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__")
      mixq::detail::fail("write_safetensors \"", path, "\": invalid tensor name \"", name, "\"");
    if (mixq::detail::shape_numel(t.shape, "write_safetensors tensor") != static_cast<std::int64_t>(t.values.size()))
      mixq::detail::fail("write_safetensors \"", path, "\": tensor \"", name, "\" has ", t.values.size(),
                         " values, its shape needs ", mixq::detail::shape_numel(t.shape));
    pending.push_back({name, Dtype::F32, t.shape, t.values.data(), t.values.size() * 4});
  }
  detail::write_safetensors_file(path, std::move(pending), metadata);
}

}  // namespace mixq::io
