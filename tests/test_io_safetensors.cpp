// safetensors: the fixture made by an independent writer (tests/data/make_fixture.py), quantized-model round
// trips, and every kind of malformed file.
#include <mixq/io/safetensors.hpp>
#include <mixq/quant.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using mixq::io::SafetensorsFile;

namespace {

std::string fixture(const char* name) { return std::string(MIXQ_SOURCE_DIR) + "/tests/data/" + name; }

/// A fresh empty folder per test.
fs::path temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path p = fs::temp_directory_path() / (std::string("mixq_st_") + info->name() + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<std::uint8_t> file_bytes(const std::string& header, const std::vector<std::uint8_t>& data,
                                     std::uint64_t header_len_override = 0) {
  std::vector<std::uint8_t> out(8);
  const std::uint64_t len = header_len_override != 0 ? header_len_override : header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(len >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void expect_error(const std::vector<std::uint8_t>& bytes, const std::string& needle) {
  try {
    SafetensorsFile::parse(bytes, "case");
    FAIL() << "expected mixq::error containing \"" << needle << "\"";
  } catch (const mixq::error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(SafetensorsFixture, ReadsFloatTensorsOfEveryDtype) {
  const SafetensorsFile f = SafetensorsFile::load(fixture("fixture.safetensors"));
  EXPECT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.metadata().at("producer"), "make_fixture.py");

  const auto w = f.read_float("weight.f32");
  EXPECT_EQ(w.shape, (mixq::Shape{2, 3}));
  EXPECT_EQ(w.values, (std::vector<float>{0.5f, -1.25f, 3.0f, 1e-3f, -7.5f, 65504.0f}));
  const mixq::RowMajorArrayXXf a = f.read_array("weight.f32");
  EXPECT_EQ(a.rows(), 2);
  EXPECT_EQ(a(1, 1), -7.5f);
  const Eigen::Tensor<float, 2, Eigen::RowMajor> t = f.read_tensor<2>("weight.f32");
  EXPECT_EQ(t(0, 2), 3.0f);
  EXPECT_THROW(f.read_tensor<3>("weight.f32"), mixq::error);

  const auto b = f.read_float("bias.f16");
  EXPECT_EQ(b.values, (std::vector<float>{1.0f, -2.5f, 6.103515625e-05f, 5.960464477539063e-08f}));

  const auto e = f.read_float("emb.bf16");
  EXPECT_EQ(e.shape, (mixq::Shape{2, 2}));
  EXPECT_EQ(e.values, (std::vector<float>{1.0f, -0.5f, 3.140625f, 256.0f}));

  const auto s = f.read_float("scalar");
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.values, std::vector<float>{42.0f});

  EXPECT_EQ(f.info("ids").dtype, mixq::io::Dtype::I32);
  EXPECT_THROW(f.read_float("ids"), mixq::error);
  EXPECT_THROW(f.read_float("missing"), mixq::error);
  EXPECT_THROW(mixq::io::read_safetensors(fixture("fixture.safetensors")), mixq::error);  // ids is not float
}

TEST(SafetensorsFixture, HalfConversionIsExact) {
  using mixq::io::detail::half_to_float;
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0xc000), -2.0f);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), 5.960464477539063e-08f);
  EXPECT_EQ(half_to_float(0x03ff), 6.097555160522461e-05f);
  EXPECT_TRUE(std::isinf(half_to_float(0xfc00)) && half_to_float(0xfc00) < 0);
  EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
}

TEST(SafetensorsFixture, ReadsQuantizedModelOfAnIndependentWriter) {
  const mixq::io::QuantizedModel m = mixq::io::read_quantized_model(fixture("fixture_quantized.safetensors"));
  ASSERT_EQ(m.quantized.size(), 1u);
  const mixq::QuantizedTensor& q = m.quantized.at("conv.weight");
  EXPECT_EQ(q.shape(), (mixq::Shape{2, 3}));
  EXPECT_EQ(q.bit_width(), 3);
  EXPECT_EQ(q.spec().granularity, mixq::Granularity::per_channel);
  EXPECT_EQ(q.codes(), (std::vector<std::int32_t>{-4, -1, 3, 0, 2, -3}));
  EXPECT_EQ(q.code(5), -3);
  EXPECT_EQ(q.dequantize(), (std::vector<float>{-1.0f, -0.25f, 0.75f, 0.0f, 0.25f, -0.375f}));
  EXPECT_EQ(m.floats.at("conv.bias").values, (std::vector<float>{0.5f, -0.5f}));
  EXPECT_EQ(m.metadata.at("note"), "written by make_fixture.py");
}

namespace {

mixq::io::QuantizedModel sample_model() {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  mixq::io::QuantizedModel m;
  auto add = [&](const std::string& name, const mixq::QuantSpec& spec, const mixq::Shape& shape) {
    std::vector<float> x(static_cast<std::size_t>(mixq::detail::shape_numel(shape)));
    for (float& v : x) v = normal(gen);
    mixq::QuantizedTensor t;
    if (spec.granularity == mixq::Granularity::per_tensor) {
      mixq::PerTensorQuantizer q(spec);
      q.calibrate(x.data(), shape);
      t = q.quantize(x.data(), shape);
    } else if (spec.granularity == mixq::Granularity::per_channel) {
      mixq::PerChannelQuantizer q(spec);
      q.calibrate(x.data(), shape);
      t = q.quantize(x.data(), shape);
    } else {
      mixq::PerGroupQuantizer q(spec);
      q.calibrate(x.data(), shape);
      t = q.quantize(x.data(), shape);
    }
    m.quantized.emplace(name, std::move(t));
  };
  add("conv1.weight", mixq::QuantSpec::per_channel(3, 0), {8, 3, 3, 3});
  mixq::QuantSpec affine = mixq::QuantSpec::per_tensor(5, false, false);
  add("act.unsigned5", affine, {2, 3, 4, 5});
  mixq::QuantSpec g = mixq::QuantSpec::per_group(4, 16);
  g.narrow_range = true;
  add("fc.weight", g, {4, 64});
  mixq::QuantSpec wide = mixq::QuantSpec::per_tensor(13, true, false);
  wide.scale_restriction = mixq::ScaleRestriction::power_of_two;
  add("wide13", wide, {37});
  add("binary", mixq::QuantSpec::per_tensor(1, false, false), {9});
  add("u16", mixq::QuantSpec::per_tensor(16, false, false), {5});
  m.floats["conv1.bias"] = {{8}, std::vector<float>(8, 0.25f)};
  m.floats["bn.running_mean"] = {{}, {3.5f}};
  m.metadata["policy"] = "{\"conv1\": 3}";
  return m;
}

}  // namespace

TEST(SafetensorsQuantized, WriteThenReadGivesIdenticalModel) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "model.safetensors").string();
  const mixq::io::QuantizedModel m = sample_model();
  mixq::io::write_quantized_model(path, m);
  const mixq::io::QuantizedModel r = mixq::io::read_quantized_model(path);
  ASSERT_EQ(r.quantized.size(), m.quantized.size());
  for (const auto& [name, t] : m.quantized) {
    const mixq::QuantizedTensor& u = r.quantized.at(name);
    EXPECT_TRUE(u == t) << name;
    EXPECT_EQ(u.codes(), t.codes()) << name;
    EXPECT_EQ(u.dequantize(), t.dequantize()) << name;
  }
  EXPECT_EQ(r.floats.size(), 2u);
  EXPECT_EQ(r.floats.at("conv1.bias").values, m.floats.at("conv1.bias").values);
  EXPECT_TRUE(r.floats.at("bn.running_mean").shape.empty());
  EXPECT_EQ(r.metadata, m.metadata);
  // a 3-bit tensor of 216 elements holds 81 bytes of codes
  const SafetensorsFile f = SafetensorsFile::load(path);
  EXPECT_EQ(f.info("conv1.weight.codes").end - f.info("conv1.weight.codes").begin, 81u);
  EXPECT_EQ(f.info("conv1.weight.scales").dtype, mixq::io::Dtype::F32);
  EXPECT_EQ(f.info("conv1.weight.zero_points").dtype, mixq::io::Dtype::I32);
  EXPECT_EQ(f.metadata().at("mixq.format"), mixq::io::quantized_format_name);
  // the data section starts 8-byte aligned
  std::ifstream in(path, std::ios::binary);
  std::uint64_t len = 0;
  in.read(reinterpret_cast<char*>(&len), 8);
  EXPECT_EQ(len % 8, 0u);
  fs::remove_all(dir);
}

TEST(SafetensorsQuantized, FailedWriteLeavesNoFile) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "model.safetensors").string();
  mixq::io::QuantizedModel bad = sample_model();
  bad.metadata["mixq.format"] = "mine";  // reserved prefix
  EXPECT_THROW(mixq::io::write_quantized_model(path, bad), mixq::error);
  bad = sample_model();
  bad.floats["fc.weight.codes"] = {{1}, {1.0f}};  // collides with a quantized tensor's codes
  EXPECT_THROW(mixq::io::write_quantized_model(path, bad), mixq::error);
  bad = sample_model();
  bad.floats["x"] = {{2, 2}, {1.0f}};  // shape and values disagree
  EXPECT_THROW(mixq::io::write_quantized_model(path, bad), mixq::error);
  bad = sample_model();
  bad.quantized["empty"] = mixq::QuantizedTensor{};
  EXPECT_THROW(mixq::io::write_quantized_model(path, bad), mixq::error);
  EXPECT_TRUE(fs::is_empty(dir));  // neither the target nor a temporary file
  EXPECT_THROW(mixq::io::write_quantized_model((dir / "no/such/folder/m.safetensors").string(), sample_model()),
               mixq::error);
  EXPECT_TRUE(fs::is_empty(dir));
  // a failed overwrite keeps the old file intact
  mixq::io::write_quantized_model(path, sample_model());
  const auto before = fs::file_size(path);
  bad = sample_model();
  bad.metadata["mixq.x"] = "y";
  EXPECT_THROW(mixq::io::write_quantized_model(path, bad), mixq::error);
  EXPECT_EQ(fs::file_size(path), before);
  EXPECT_NO_THROW(mixq::io::read_quantized_model(path));
  fs::remove_all(dir);
}

TEST(SafetensorsMalformed, HeaderLengthAndJson) {
  expect_error({1, 2, 3}, "shorter than");
  expect_error(file_bytes("{}", {}, 1000), "runs past the end");
  expect_error(file_bytes("{}", {}, 200'000'000), "exceeds the limit");
  expect_error(file_bytes("{}", {}, ~std::uint64_t{0}), "exceeds the limit");
  expect_error(file_bytes("[1, 2]", {}), "not an object");
  expect_error(file_bytes("\"text\"", {}), "not an object");
  expect_error(file_bytes("{\"a\": ", {}), "not valid JSON");
  expect_error(file_bytes(std::string("{\"a\xff\": 1}"), {}), "not valid JSON");
  expect_error(file_bytes("{\"a\": 1}", {}), "expected an object");
  expect_error(file_bytes("{\"__metadata__\": {\"k\": 1}}", {}), "not a string");
  expect_error(file_bytes("{\"__metadata__\": [1]}", {}), "expected an object");
  EXPECT_NO_THROW(SafetensorsFile::parse(file_bytes("{}", {})));
  EXPECT_NO_THROW(SafetensorsFile::parse(file_bytes("{}      ", {})));
  EXPECT_THROW(SafetensorsFile::load("/nonexistent/file.safetensors"), mixq::error);
}

TEST(SafetensorsMalformed, EntriesOffsetsAndDtypes) {
  const std::vector<std::uint8_t> data(16, 0);
  auto entry = [](const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
  };
  expect_error(file_bytes("{\"a\":" + entry("Q7", "[2]", "[0,8]") + "}", data), "unknown dtype");
  expect_error(file_bytes("{\"a\":" + entry("F32", "[2]", "[0,20]") + "}", data), "run past the data");
  expect_error(file_bytes("{\"a\":" + entry("F32", "[2]", "[8,0]") + "}", data), "reversed");
  expect_error(file_bytes("{\"a\":" + entry("F32", "[3]", "[0,8]") + "}", data), "need 12");
  expect_error(file_bytes("{\"a\":" + entry("F32", "[-2]", "[0,8]") + "}", data), "non-negative");
  expect_error(file_bytes("{\"a\":" + entry("F32", "[2.5]", "[0,8]") + "}", data), "non-negative");
  expect_error(file_bytes("{\"a\":" + entry("F32", "2", "[0,8]") + "}", data), "shape");
  expect_error(file_bytes("{\"a\":" + entry("F32", "[2]", "[0]") + "}", data), "data_offsets");
  expect_error(file_bytes("{\"a\":" + entry("F32", "[4294967296,4294967296,4294967296]", "[0,8]") + "}", data),
               "too many elements");
  expect_error(file_bytes("{\"a\":" + entry("F32", "[2]", "[0,8]") + ",\"b\":" + entry("F32", "[2]", "[4,12]") + "}",
                          data),
               "overlap");
  expect_error(file_bytes("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", data), "dtype");
  EXPECT_NO_THROW(SafetensorsFile::parse(
      file_bytes("{\"a\":" + entry("F32", "[2]", "[0,8]") + ",\"b\":" + entry("I32", "[0,5]", "[8,8]") + "}", data)));
}

TEST(SafetensorsMalformed, QuantizedEntries) {
  const SafetensorsFile good = SafetensorsFile::load(fixture("fixture_quantized.safetensors"));
  EXPECT_NO_THROW(mixq::io::read_quantized_model(good));
  // Rebuild the fixture's header with one field changed at a time.
  std::vector<std::uint8_t> bytes;
  {
    std::ifstream in(fixture("fixture_quantized.safetensors"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);
  const nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(len));
  const std::vector<std::uint8_t> data(bytes.begin() + 8 + static_cast<long>(len), bytes.end());
  auto with_spec = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json h = header;
    nlohmann::json spec = nlohmann::json::parse(h["__metadata__"]["mixq.quant.conv.weight"].get<std::string>());
    if (value.is_null()) spec.erase(key);
    else spec[key] = value;
    h["__metadata__"]["mixq.quant.conv.weight"] = spec.dump();
    return SafetensorsFile::parse(file_bytes(h.dump(), data));
  };
  auto expect_model_error = [](const SafetensorsFile& f, const std::string& needle) {
    try {
      mixq::io::read_quantized_model(f);
      FAIL() << "expected mixq::error containing \"" << needle << "\"";
    } catch (const mixq::error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_model_error(with_spec("bit_width", 17), "bit_width");
  expect_model_error(with_spec("bit_width", 5), "packed codes hold");
  expect_model_error(with_spec("shape", nlohmann::json::array({3, 3})), "needs 3");
  expect_model_error(with_spec("shape", nlohmann::json::array({2, 5})), "packed codes hold");
  expect_model_error(with_spec("axis", 2), "axis");
  expect_model_error(with_spec("granularity", "per_row"), "granularity");
  expect_model_error(with_spec("signed", "yes"), "wrong type");
  expect_model_error(with_spec("packing", "msb_first"), "packing");
  expect_model_error(with_spec("symmetric", nlohmann::json()), "missing field");
  expect_model_error(with_spec("narrow_range", true), "below qmin");  // code -4 is outside the narrow range
  {
    nlohmann::json h = header;
    h["__metadata__"]["mixq.quant.conv.weight"] = "not json";
    expect_model_error(SafetensorsFile::parse(file_bytes(h.dump(), data)), "not valid JSON");
    h = header;
    h["__metadata__"]["mixq.format"] = "other";
    expect_model_error(SafetensorsFile::parse(file_bytes(h.dump(), data)), "unknown format");
    h = header;
    h["conv.weight.scales"]["dtype"] = "I32";
    expect_model_error(SafetensorsFile::parse(file_bytes(h.dump(), data)), "expected F32");
    h = header;
    h.erase("conv.weight.zero_points");
    expect_model_error(SafetensorsFile::parse(file_bytes(h.dump(), data)), "missing tensor");
  }
}

// Plain float files: write_safetensors and read_safetensors round trip exactly; float_tensor copies any Eigen
// matrix or tensor row-major (a column-major one is transposed into row-major order); "mixq.format" is refused.
TEST(Safetensors, FloatWriterAndFloatTensorFromEigen) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "floats.safetensors").string();
  Eigen::MatrixXf m(2, 3);  // column-major
  m << 1, 2, 3, 4, 5, 6;
  const mixq::io::FloatTensor fm = mixq::io::float_tensor(m);
  EXPECT_EQ(fm.shape, (mixq::Shape{2, 3}));
  EXPECT_EQ(fm.values, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  Eigen::Tensor<float, 3> col(2, 3, 4);  // column-major
  Eigen::Tensor<float, 3, Eigen::RowMajor> row(2, 3, 4);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) col(i, j, k) = row(i, j, k) = static_cast<float>(100 * i + 10 * j + k);
  const mixq::io::FloatTensor fc = mixq::io::float_tensor(col), fr = mixq::io::float_tensor(row);
  EXPECT_EQ(fc.shape, (mixq::Shape{2, 3, 4}));
  EXPECT_EQ(fc.values, fr.values);
  EXPECT_EQ(fr.values[1 * 12 + 2 * 4 + 3], 123.0f);
  const Eigen::TensorMap<Eigen::Tensor<const float, 3, Eigen::RowMajor>> view = fr.tensor<3>();
  EXPECT_EQ(mixq::io::float_tensor(view).values, fr.values);
  mixq::io::write_safetensors(path, {{"m", fm}, {"t", fc}}, {{"note", "plain"}});
  const auto back = mixq::io::read_safetensors(path);
  EXPECT_EQ(back.at("m").values, fm.values);
  EXPECT_EQ(back.at("t").shape, fc.shape);
  EXPECT_EQ(back.at("t").values, fc.values);
  const auto f = mixq::io::SafetensorsFile::load(path);
  EXPECT_EQ(f.metadata().at("note"), "plain");
  EXPECT_THROW(mixq::io::read_quantized_model(path), mixq::error);  // not a quantized model
  EXPECT_THROW(mixq::io::write_safetensors(path, {{"m", fm}}, {{"mixq.format", "x"}}), mixq::error);
  mixq::io::FloatTensor bad = fm;
  bad.values.pop_back();
  EXPECT_THROW(mixq::io::write_safetensors(path, {{"m", bad}}), mixq::error);
  EXPECT_EQ(mixq::io::read_safetensors(path).size(), 2u);  // the failed writes left the file as it was
  fs::remove_all(dir);
}
