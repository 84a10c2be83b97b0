// The Fashion-MNIST IDX reader: synthetic gzip files (valid, truncated, mislabelled, inconsistent), the folder
// resolution (argument > MIXQ_FASHION_MNIST > default), and the real data set when installed.
#include <mixq/io/fashion_mnist.hpp>

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using mixq::io::ImageSet;

namespace {

void put_be32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

void write_gz(const std::string& path, const std::vector<std::uint8_t>& bytes, std::size_t keep = SIZE_MAX) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (!bytes.empty()) gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  if (keep != SIZE_MAX) fs::resize_file(path, keep);  // truncate the compressed stream
}

std::vector<std::uint8_t> images_file(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  std::vector<std::uint8_t> b;
  put_be32(b, 0x803);
  put_be32(b, n);
  put_be32(b, rows);
  put_be32(b, cols);
  for (std::uint32_t i = 0; i < n * rows * cols; ++i) b.push_back(static_cast<std::uint8_t>(i * 7));
  return b;
}

std::vector<std::uint8_t> labels_file(std::uint32_t n, std::uint8_t bad_at = 255) {
  std::vector<std::uint8_t> b;
  put_be32(b, 0x801);
  put_be32(b, n);
  for (std::uint32_t i = 0; i < n; ++i) b.push_back(i == bad_at ? 10 : static_cast<std::uint8_t>(i % 10));
  return b;
}

class IdxFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mixq_idx_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_split(const std::string& split, std::uint32_t n, std::uint32_t labels_n) {
    write_gz(path(split + "-images-idx3-ubyte.gz"), images_file(n, 28, 28));
    write_gz(path(split + "-labels-idx1-ubyte.gz"), labels_file(labels_n));
  }
  fs::path dir_;
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mixq::error& e) {
    return e.what();
  }
  return "no exception";
}

}  // namespace

TEST_F(IdxFiles, ReadsValidFiles) {
  write_split("train", 12, 12);
  write_split("t10k", 5, 5);
  const auto d = mixq::io::load_fashion_mnist(dir_.string());
  EXPECT_EQ(d.train.size(), 12);
  EXPECT_EQ(d.test.size(), 5);
  EXPECT_EQ(d.train.rows, 28);
  EXPECT_EQ(d.train.images.cols(), 784);
  EXPECT_EQ(d.train.images(1, 0), static_cast<std::uint8_t>(784 * 7));
  EXPECT_EQ(d.train.labels[11], 1);
}

TEST_F(IdxFiles, ErrorsNameTheFile) {
  write_split("train", 4, 4);
  // Missing folder / file.
  EXPECT_NE(message_of([&] { mixq::io::load_fashion_mnist(path("nowhere")); }).find("nowhere"), std::string::npos);
  // Truncated payload (valid gzip, too few bytes).
  auto img = images_file(4, 28, 28);
  img.resize(img.size() - 10);
  write_gz(path("short.gz"), img);
  const std::string m1 = message_of([&] { mixq::io::read_idx_images(path("short.gz")); });
  EXPECT_NE(m1.find("short.gz"), std::string::npos) << m1;
  EXPECT_NE(m1.find("truncated"), std::string::npos) << m1;
  // Truncated gzip stream.
  write_gz(path("cut.gz"), images_file(40, 28, 28), 200);
  const std::string m2 = message_of([&] { mixq::io::read_idx_images(path("cut.gz")); });
  EXPECT_NE(m2.find("cut.gz"), std::string::npos) << m2;
  // A label file passed as images (mislabelled) and vice versa.
  write_gz(path("labels.gz"), labels_file(20));
  const std::string m3 = message_of([&] { mixq::io::read_idx_images(path("labels.gz")); });
  EXPECT_NE(m3.find("labels.gz"), std::string::npos) << m3;
  EXPECT_NE(m3.find("magic"), std::string::npos) << m3;
  EXPECT_THROW(mixq::io::read_idx_labels(path("train-images-idx3-ubyte.gz")), mixq::error);
  // Label out of range.
  write_gz(path("badlabel.gz"), labels_file(5, 3));
  const std::string m4 = message_of([&] { mixq::io::read_idx_labels(path("badlabel.gz")); });
  EXPECT_NE(m4.find("label 10 at index 3"), std::string::npos) << m4;
  // Image and label counts disagree.
  write_split("t10k", 6, 5);
  const std::string m5 = message_of([&] { mixq::io::read_fashion_mnist_split(dir_.string(), "t10k"); });
  EXPECT_NE(m5.find("t10k-labels-idx1-ubyte.gz"), std::string::npos) << m5;
  EXPECT_THROW(mixq::io::read_fashion_mnist_split(dir_.string(), "valid"), mixq::error);
}

TEST(FashionMnistDirectory, ArgumentThenEnvironmentThenDefault) {
  const char* old = std::getenv("MIXQ_FASHION_MNIST");
  const std::string saved = old ? old : "";
  ::unsetenv("MIXQ_FASHION_MNIST");
  EXPECT_EQ(mixq::io::fashion_mnist_directory(), "/usr/share/datasets/fashion-mnist");
  ::setenv("MIXQ_FASHION_MNIST", "/tmp/fm", 1);
  EXPECT_EQ(mixq::io::fashion_mnist_directory(), "/tmp/fm");
  EXPECT_EQ(mixq::io::fashion_mnist_directory("/data"), "/data");
  if (old)
    ::setenv("MIXQ_FASHION_MNIST", saved.c_str(), 1);
  else
    ::unsetenv("MIXQ_FASHION_MNIST");
}

TEST(FashionMnist, RealDataWhenInstalled) {
  const std::string dir = mixq::io::fashion_mnist_directory();
  if (!fs::exists(dir + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed in " << dir;
  const ImageSet test = mixq::io::read_fashion_mnist_split(dir, "t10k");
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(test.rows, 28);
  EXPECT_EQ(test.cols, 28);
  std::vector<int> counts(10, 0);
  for (auto l : test.labels) ++counts[l];
  for (int c : counts) EXPECT_EQ(c, 1000);  // the test split is balanced
  EXPECT_EQ(test.labels[0], 9);              // the first test image is an ankle boot
}
