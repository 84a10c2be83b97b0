#pragma once
/// @file
/// Reader for the IDX files of Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017), gzip-compressed or plain.
///
/// Requires zlib: link `ZLIB::ZLIB` (the installed `mixq::mixq` target does this for you).
/// Default location: `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`), overridden by
/// the environment variable `MIXQ_FASHION_MNIST`, itself overridden by an explicit argument.

#include <zlib.h>

#include "mixq/detail/eigen.hpp"
#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "mixq/error.hpp"

namespace mixq::io {

/// Images (one row of rows*cols bytes per image, 0 = background) and labels (0..9) of one split.
struct ImageSet {
  Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> images;
  std::vector<std::uint8_t> labels;
  int rows = 0;  ///< image height in pixels
  int cols = 0;  ///< image width in pixels
  /// Number of images.
  std::ptrdiff_t size() const { return static_cast<std::ptrdiff_t>(labels.size()); }
};

/// The two splits of Fashion-MNIST: 60000 training and 10000 test images of 28x28 pixels.
struct FashionMnist {
  ImageSet train;
  ImageSet test;
};

/// Class names of Fashion-MNIST, indexed by label.
inline constexpr std::array<const char*, 10> fashion_mnist_classes = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/// Mean and standard deviation of the training pixels scaled to [0, 1] (for input normalisation).
inline constexpr float fashion_mnist_mean = 0.2860f;
inline constexpr float fashion_mnist_std = 0.3530f;

namespace detail {

/// Reads a whole gzip (or plain) file; zlib's gzread passes plain files through.
inline std::vector<std::uint8_t> read_gz_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) mixq::detail::fail("cannot open IDX file '", path, "'");
  std::vector<std::uint8_t> out;
  std::vector<std::uint8_t> chunk(1 << 20);
  for (;;) {
    const int got = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (got < 0) {
      int errnum = 0;
      const std::string msg = gzerror(f, &errnum);
      gzclose(f);
      mixq::detail::fail("cannot decompress IDX file '", path, "': ", msg);
    }
    if (got == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + got);
  }
  // A truncated gzip stream ends without error from gzread but gzclose_r reports Z_BUF_ERROR.
  const int rc = gzclose(f);
  if (rc != Z_OK) mixq::detail::fail("IDX file '", path, "' is truncated or corrupt (zlib error ", rc, ")");
  return out;
}

inline std::uint32_t read_be32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return (std::uint32_t(b[at]) << 24) | (std::uint32_t(b[at + 1]) << 16) | (std::uint32_t(b[at + 2]) << 8) |
         std::uint32_t(b[at + 3]);
}

}  // namespace detail

/// Reads an IDX3 unsigned-byte image file (magic 0x00000803). Throws mixq::error naming the file when it is
/// missing, truncated, or not an image file (for example a label file).
inline ImageSet read_idx_images(const std::string& path) {
  const std::vector<std::uint8_t> b = detail::read_gz_file(path);
  if (b.size() < 16) mixq::detail::fail("IDX image file '", path, "' is truncated: ", b.size(), " bytes");
  const std::uint32_t magic = detail::read_be32(b, 0);
  if (magic != 0x00000803u)
    mixq::detail::fail("IDX image file '", path, "' has magic 0x", std::hex, magic,
                       ", expected 0x803 (unsigned bytes, 3 dimensions)");
  const std::uint32_t n = detail::read_be32(b, 4), rows = detail::read_be32(b, 8), cols = detail::read_be32(b, 12);
  if (rows == 0 || cols == 0 || rows > 4096 || cols > 4096)
    mixq::detail::fail("IDX image file '", path, "' has implausible image size ", rows, "x", cols);
  const std::size_t need = 16 + std::size_t(n) * rows * cols;
  if (b.size() != need)
    mixq::detail::fail("IDX image file '", path, "' has ", b.size(), " bytes, expected ", need, " for ", n,
                       " images of ", rows, "x", cols, b.size() < need ? " (truncated)" : " (trailing data)");
  ImageSet s;
  s.rows = static_cast<int>(rows);
  s.cols = static_cast<int>(cols);
  s.images.resize(n, std::ptrdiff_t(rows) * cols);
  std::copy(b.begin() + 16, b.end(), s.images.data());
  return s;
}

/// Reads an IDX1 unsigned-byte label file (magic 0x00000801); every label must be below `num_classes`.
inline std::vector<std::uint8_t> read_idx_labels(const std::string& path, int num_classes = 10) {
  const std::vector<std::uint8_t> b = detail::read_gz_file(path);
  if (b.size() < 8) mixq::detail::fail("IDX label file '", path, "' is truncated: ", b.size(), " bytes");
  const std::uint32_t magic = detail::read_be32(b, 0);
  if (magic != 0x00000801u)
    mixq::detail::fail("IDX label file '", path, "' has magic 0x", std::hex, magic,
                       ", expected 0x801 (unsigned bytes, 1 dimension)");
  const std::uint32_t n = detail::read_be32(b, 4);
  if (b.size() != 8 + std::size_t(n))
    mixq::detail::fail("IDX label file '", path, "' has ", b.size(), " bytes, expected ", 8 + std::size_t(n),
                       " for ", n, " labels", b.size() < 8 + std::size_t(n) ? " (truncated)" : " (trailing data)");
  std::vector<std::uint8_t> labels(b.begin() + 8, b.end());
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= num_classes)
      mixq::detail::fail("IDX label file '", path, "' has label ", int(labels[i]), " at index ", i,
                         ", expected 0..", num_classes - 1);
  return labels;
}

/// The Fashion-MNIST folder: `directory` if not empty, else `$MIXQ_FASHION_MNIST` if set and not empty,
/// else `/usr/share/datasets/fashion-mnist`.
inline std::string fashion_mnist_directory(const std::string& directory = "") {
  if (!directory.empty()) return directory;
  if (const char* env = std::getenv("MIXQ_FASHION_MNIST"); env != nullptr && *env != '\0') return env;
  return "/usr/share/datasets/fashion-mnist";
}

/// Reads one split ("train" or "t10k") from `directory`: `<split>-images-idx3-ubyte.gz` and
/// `<split>-labels-idx1-ubyte.gz` (the files without `.gz` are used when the compressed ones are absent).
/// Throws mixq::error naming the file when a file is missing or malformed, or when counts disagree.
inline ImageSet read_fashion_mnist_split(const std::string& directory, const std::string& split) {
  if (split != "train" && split != "t10k") mixq::detail::fail("split must be 'train' or 't10k', got '", split, "'");
  auto pick = [&](const std::string& stem) {
    const std::string gz = directory + "/" + stem + ".gz";
    if (gzFile f = gzopen(gz.c_str(), "rb"); f != nullptr) {
      gzclose(f);
      return gz;
    }
    const std::string plain = directory + "/" + stem;
    if (gzFile f = gzopen(plain.c_str(), "rb"); f != nullptr) {
      gzclose(f);
      return plain;
    }
    mixq::detail::fail("Fashion-MNIST file '", gz, "' not found (set MIXQ_FASHION_MNIST or pass the folder; "
                       "Debian package dataset-fashion-mnist)");
  };
  const std::string images_path = pick(split + "-images-idx3-ubyte");
  const std::string labels_path = pick(split + "-labels-idx1-ubyte");
  ImageSet s = read_idx_images(images_path);
  s.labels = read_idx_labels(labels_path);
  if (static_cast<std::ptrdiff_t>(s.labels.size()) != s.images.rows())
    mixq::detail::fail("Fashion-MNIST label file '", labels_path, "' has ", s.labels.size(), " labels but '",
                       images_path, "' has ", s.images.rows(), " images");
  return s;
}

/// Reads both splits of Fashion-MNIST from fashion_mnist_directory(directory).
inline FashionMnist load_fashion_mnist(const std::string& directory = "") {
  const std::string dir = fashion_mnist_directory(directory);
  return FashionMnist{read_fashion_mnist_split(dir, "train"), read_fashion_mnist_split(dir, "t10k")};
}

}  // namespace mixq::io
