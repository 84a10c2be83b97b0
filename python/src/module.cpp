// The mixq Python module (mixq._core): the kernels on NumPy float32 arrays without copies, the quantized
// safetensors format, and the module definition (the search layer is bound in search.cpp).

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common.hpp"
#include "mixq/error.hpp"
#include "mixq/io/safetensors.hpp"
#include "mixq/kernels/dispatch.hpp"
#include "mixq/kernels/fake_quant.hpp"
#include "mixq/kernels/pack_bits.hpp"
#include "mixq/kernels/quantize.hpp"
#include "mixq/quant/quantized_tensor.hpp"
#include "mixq/quant/quantizer.hpp"
#include "mixq/quant/spec.hpp"
#include "mixq/version.hpp"

namespace mixq::python {

using namespace pybind11::literals;
namespace mk = mixq::kernels;

namespace {

/// The output array of a kernel: `out` (checked: float32/T, C-contiguous, writable, shape of x, equal to or
/// disjoint from x) or a new array of x's shape.
template <class T>
py::array_t<T> output_like(const char* fn, const py::array& x, const py::object& out, const char* out_name = "out") {
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  if (out.is_none()) return py::array_t<T>(shape);
  py::array_t<T> o = strict_array<T>(fn, out_name, out, true);
  if (o.ndim() != x.ndim() || !std::equal(shape.begin(), shape.end(), o.shape()))
    mixq::detail::fail(fn, ": ", out_name, " must have the shape of x ", shape_string(x), ", got ", shape_string(o));
  const auto* xb = static_cast<const char*>(x.data());  // NOLINT
  const auto* ob = reinterpret_cast<const char*>(o.data());
  const auto xn = static_cast<std::size_t>(x.nbytes()), on = static_cast<std::size_t>(o.nbytes());
  if (xb != ob && xb < ob + on && ob < xb + xn)
    mixq::detail::fail(fn, ": ", out_name, " partly overlaps x (it must be x itself or disjoint from it)");
  return o;
}

/// (outer, channels, inner) of a C-contiguous array for a channel axis (negative counts from the end).
struct Split {
  std::ptrdiff_t outer = 1, channels = 1, inner = 1;
};
Split split_axis(const char* fn, const py::array& x, int axis) {
  const int nd = static_cast<int>(x.ndim());
  const int a = axis < 0 ? axis + nd : axis;
  if (nd == 0 || a < 0 || a >= nd) mixq::detail::fail(fn, ": axis ", axis, " is out of range for an array of rank ", nd);
  Split s;
  for (int i = 0; i < a; ++i) s.outer *= x.shape(i);
  s.channels = x.shape(a);
  for (int i = a + 1; i < nd; ++i) s.inner *= x.shape(i);
  return s;
}

/// Per-channel parameters: scales float32 (C,), zero points int32 (C,) or None.
struct ChannelParams {
  py::array_t<float> scales;
  py::array_t<std::int32_t> zero_points;
  const std::int32_t* zp = nullptr;
};
ChannelParams channel_params(const char* fn, const py::object& scales, const py::object& zero_points,
                             std::ptrdiff_t channels) {
  ChannelParams p;
  p.scales = strict_array<float>(fn, "scales", scales);
  if (p.scales.ndim() != 1 || p.scales.shape(0) != channels)
    mixq::detail::fail(fn, ": scales must have shape (", channels, ",), got ", shape_string(p.scales));
  if (!zero_points.is_none()) {
    p.zero_points = strict_array<std::int32_t>(fn, "zero_points", zero_points);
    if (p.zero_points.ndim() != 1 || p.zero_points.shape(0) != channels)
      mixq::detail::fail(fn, ": zero_points must have shape (", channels, ",), got ", shape_string(p.zero_points));
    p.zp = p.zero_points.data();
  }
  return p;
}

/// Rows and columns of a per-group layout: the last axis is split into groups.
std::pair<std::ptrdiff_t, std::ptrdiff_t> rows_cols(const char* fn, const py::array& x) {
  if (x.ndim() == 0) mixq::detail::fail(fn, ": x must have at least one dimension");
  const std::ptrdiff_t cols = x.shape(x.ndim() - 1);
  return {cols == 0 ? 0 : static_cast<std::ptrdiff_t>(x.size()) / cols, cols};
}

mixq::Granularity granularity_of(const std::string& g) {
  if (g == "per_tensor") return Granularity::per_tensor;
  if (g == "per_channel") return Granularity::per_channel;
  if (g == "per_group") return Granularity::per_group;
  mixq::detail::fail("QuantSpec: granularity must be 'per_tensor', 'per_channel' or 'per_group', got '", g, "'");
}

mixq::Shape shape_of(const py::array& a) { return mixq::Shape(a.shape(), a.shape() + a.ndim()); }

py::array_t<float> float_tensor_array(const mixq::io::FloatTensor& t) {
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  py::array_t<float> a(shape);
  if (!t.values.empty()) std::memcpy(a.mutable_data(), t.values.data(), t.values.size() * sizeof(float));
  return a;
}

template <Granularity G>
QuantizedTensor quantize_with(const float* x, const Shape& shape, const QuantSpec& spec, std::vector<float> scales,
                              std::vector<std::int32_t> zero_points) {
  Quantizer<G> q(spec);
  q.set_params(std::move(scales), std::move(zero_points));
  return q.quantize(x, shape);
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def("active_isa", [] { return std::string(mk::isa_name(mk::active_isa())); },
        "The instruction set the kernels run on ('scalar', 'avx2', 'avx512', 'neon'; MIXQ_FORCE_ISA forces one).");

  m.def(
      "fake_quant",
      [](py::object x_, float scale, std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax, py::object out) {
        const auto x = strict_array<float>("fake_quant", "x", x_);
        auto y = output_like<float>("fake_quant", x, out);
        {
          py::gil_scoped_release r;
          mk::fake_quant(x.data(), y.mutable_data(), static_cast<std::ptrdiff_t>(x.size()), scale, zero_point, qmin, qmax);
        }
        return y;
      },
      "x"_a, "scale"_a, "zero_point"_a, "qmin"_a, "qmax"_a, "out"_a = py::none(),
      R"doc(Per-tensor fake quantization y = (clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale
(round half to even, 1/scale in float: docs/NUMERICS.md; equal to torch.fake_quantize_per_tensor_affine on finite
x). x: C-contiguous float32, never copied; out: None (a new array), x itself (in place) or a disjoint float32
array of x's shape. NaN gives NaN, +-Inf the qmax/qmin level.)doc");

  m.def(
      "fake_quant_per_channel",
      [](py::object x_, py::object scales, py::object zero_points, int axis, std::int32_t qmin, std::int32_t qmax,
         py::object out) {
        const auto x = strict_array<float>("fake_quant_per_channel", "x", x_);
        const Split s = split_axis("fake_quant_per_channel", x, axis);
        const ChannelParams p = channel_params("fake_quant_per_channel", scales, zero_points, s.channels);
        auto y = output_like<float>("fake_quant_per_channel", x, out);
        {
          py::gil_scoped_release r;
          mk::fake_quant_per_channel(x.data(), y.mutable_data(), s.outer, s.channels, s.inner, p.scales.data(), p.zp,
                                     qmin, qmax);
        }
        return y;
      },
      "x"_a, "scales"_a, "zero_points"_a, "axis"_a, "qmin"_a, "qmax"_a, "out"_a = py::none(),
      "Per-channel fake quantization along `axis`: scales float32 (C,), zero_points int32 (C,) or None (zeros). "
      "As fake_quant otherwise (torch.fake_quantize_per_channel_affine).");

  m.def(
      "fake_quant_per_group",
      [](py::object x_, py::object scales, py::object zero_points, std::ptrdiff_t group_size, std::int32_t qmin,
         std::int32_t qmax, py::object out) {
        const auto x = strict_array<float>("fake_quant_per_group", "x", x_);
        const auto [rows, cols] = rows_cols("fake_quant_per_group", x);
        if (group_size <= 0 || cols % group_size != 0)
          mixq::detail::fail("fake_quant_per_group: group_size=", group_size, " must be positive and divide the last extent ", cols);
        const ChannelParams p = channel_params("fake_quant_per_group", scales, zero_points, rows * (cols / group_size));
        auto y = output_like<float>("fake_quant_per_group", x, out);
        {
          py::gil_scoped_release r;
          mk::fake_quant_per_group(x.data(), y.mutable_data(), rows, cols, group_size, p.scales.data(), p.zp, qmin, qmax);
        }
        return y;
      },
      "x"_a, "scales"_a, "zero_points"_a, "group_size"_a, "qmin"_a, "qmax"_a, "out"_a = py::none(),
      "Per-group fake quantization: the last axis is split into groups of group_size contiguous elements, group g "
      "of row r uses scales[r * (cols / group_size) + g] (LLM-style weight quantization).");

  m.def(
      "fake_quant_backward",
      [](py::object x_, py::object dy_, float scale, std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax,
         py::object out) {
        const auto x = strict_array<float>("fake_quant_backward", "x", x_);
        const auto dy = strict_array<float>("fake_quant_backward", "dy", dy_);
        if (dy.size() != x.size() || !std::equal(x.shape(), x.shape() + x.ndim(), dy.shape()) || dy.ndim() != x.ndim())
          mixq::detail::fail("fake_quant_backward: dy must have the shape of x ", shape_string(x), ", got ", shape_string(dy));
        auto dx = output_like<float>("fake_quant_backward", x, out);
        {
          py::gil_scoped_release r;
          mk::fake_quant_backward(x.data(), dy.data(), dx.mutable_data(), static_cast<std::ptrdiff_t>(x.size()), scale,
                                  zero_point, qmin, qmax);
        }
        return dx;
      },
      "x"_a, "dy"_a, "scale"_a, "zero_point"_a, "qmin"_a, "qmax"_a, "out"_a = py::none(),
      "Straight-through estimator: dx = dy where round(x / scale) + zero_point lies in [qmin, qmax], else +0.");

  m.def(
      "lsq_backward",
      [](py::object x_, py::object dy_, float scale, std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax,
         py::object out) {
        const auto x = strict_array<float>("lsq_backward", "x", x_);
        const auto dy = strict_array<float>("lsq_backward", "dy", dy_);
        if (dy.ndim() != x.ndim() || !std::equal(x.shape(), x.shape() + x.ndim(), dy.shape()))
          mixq::detail::fail("lsq_backward: dy must have the shape of x ", shape_string(x), ", got ", shape_string(dy));
        auto dx = output_like<float>("lsq_backward", x, out);
        double d_scale = 0.0, d_zero_point = 0.0;
        {
          py::gil_scoped_release r;
          d_scale = mk::lsq_backward(x.data(), dy.data(), dx.mutable_data(), static_cast<std::ptrdiff_t>(x.size()), scale,
                                     zero_point, qmin, qmax, &d_zero_point);
        }
        return py::make_tuple(dx, d_scale, d_zero_point);
      },
      "x"_a, "dy"_a, "scale"_a, "zero_point"_a, "qmin"_a, "qmax"_a, "out"_a = py::none(),
      R"doc(Fused LSQ / LSQ+ backward (Esser et al. 2020; Bhalgat et al. 2020) in one pass: returns (dx, d_scale,
d_zero_point), dx the straight-through estimator, d_scale = sum dy * ((q - zero_point) - x / scale inside, qmin -
zero_point below, qmax - zero_point above), d_zero_point = -scale * sum of dy outside; sums in double (bound in
docs/NUMERICS.md). LSQ's gradient scale is not applied.)doc");

  m.def(
      "lsq_backward_per_channel",
      [](py::object x_, py::object dy_, py::object scales, py::object zero_points, int axis, std::int32_t qmin,
         std::int32_t qmax, py::object out) {
        const auto x = strict_array<float>("lsq_backward_per_channel", "x", x_);
        const auto dy = strict_array<float>("lsq_backward_per_channel", "dy", dy_);
        if (dy.ndim() != x.ndim() || !std::equal(x.shape(), x.shape() + x.ndim(), dy.shape()))
          mixq::detail::fail("lsq_backward_per_channel: dy must have the shape of x ", shape_string(x), ", got ",
                             shape_string(dy));
        const Split s = split_axis("lsq_backward_per_channel", x, axis);
        const ChannelParams p = channel_params("lsq_backward_per_channel", scales, zero_points, s.channels);
        auto dx = output_like<float>("lsq_backward_per_channel", x, out);
        py::array_t<double> ds(s.channels), dz(s.channels);
        {
          py::gil_scoped_release r;
          mk::lsq_backward_per_channel(x.data(), dy.data(), dx.mutable_data(), s.outer, s.channels, s.inner,
                                       p.scales.data(), p.zp, qmin, qmax, ds.mutable_data(), dz.mutable_data());
        }
        return py::make_tuple(dx, ds, dz);
      },
      "x"_a, "dy"_a, "scales"_a, "zero_points"_a, "axis"_a, "qmin"_a, "qmax"_a, "out"_a = py::none(),
      "Per-channel LSQ / LSQ+ backward: (dx, d_scales float64 (C,), d_zero_points float64 (C,)).");

  m.def(
      "quantize",
      [](py::object x_, float scale, std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax,
         const std::string& dtype) -> py::array {
        const auto x = strict_array<float>("quantize", "x", x_);
        std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
        const auto n = static_cast<std::ptrdiff_t>(x.size());
        if (dtype == "int8") {
          py::array_t<std::int8_t> q(shape);
          py::gil_scoped_release r;
          mk::quantize(x.data(), q.mutable_data(), n, scale, zero_point, qmin, qmax);
          return q;
        }
        if (dtype == "uint8") {
          py::array_t<std::uint8_t> q(shape);
          py::gil_scoped_release r;
          mk::quantize(x.data(), q.mutable_data(), n, scale, zero_point, qmin, qmax);
          return q;
        }
        if (dtype == "int16") {
          py::array_t<std::int16_t> q(shape);
          py::gil_scoped_release r;
          mk::quantize(x.data(), q.mutable_data(), n, scale, zero_point, qmin, qmax);
          return q;
        }
        mixq::detail::fail("quantize: dtype must be 'int8', 'uint8' or 'int16', got '", dtype, "'");
      },
      "x"_a, "scale"_a, "zero_point"_a, "qmin"_a, "qmax"_a, "dtype"_a = "int8",
      "Integer codes q = clamp(round(x / scale) + zero_point, qmin, qmax) as int8, uint8 or int16 ([qmin, qmax] must "
      "fit the type); NaN gives zero_point. dequantize(quantize(x)) == fake_quant(x) for non-NaN x.");

  m.def(
      "dequantize",
      [](py::array q, float scale, std::int32_t zero_point, py::object out) {
        const char* fn = "dequantize";
        auto y = output_like<float>(fn, q, out);
        const auto n = static_cast<std::ptrdiff_t>(q.size());
        if (q.dtype().is(py::dtype::of<std::int8_t>())) {
          const auto a = strict_array<std::int8_t>(fn, "q", q);
          py::gil_scoped_release r;
          mk::dequantize(a.data(), y.mutable_data(), n, scale, zero_point);
        } else if (q.dtype().is(py::dtype::of<std::uint8_t>())) {
          const auto a = strict_array<std::uint8_t>(fn, "q", q);
          py::gil_scoped_release r;
          mk::dequantize(a.data(), y.mutable_data(), n, scale, zero_point);
        } else if (q.dtype().is(py::dtype::of<std::int16_t>())) {
          const auto a = strict_array<std::int16_t>(fn, "q", q);
          py::gil_scoped_release r;
          mk::dequantize(a.data(), y.mutable_data(), n, scale, zero_point);
        } else {
          mixq::detail::fail(fn, ": q must have dtype int8, uint8 or int16, got ", dtype_name(q));
        }
        return y;
      },
      "q"_a, "scale"_a, "zero_point"_a, "out"_a = py::none(),
      "y = float(q - zero_point) * scale for int8, uint8 or int16 codes (C-contiguous, never copied).");

  m.def("packed_size", &mk::packed_size, "n"_a, "bits"_a, "Bytes that n codes of `bits` bits (1..8) take packed: ceil(bits * n / 8).");
  m.def(
      "pack_bits",
      [](py::array codes, int bits) {
        const char* fn = "pack_bits";
        const auto n = static_cast<std::ptrdiff_t>(codes.size());
        py::array_t<std::uint8_t> out(mk::packed_size(n, bits));
        if (codes.dtype().is(py::dtype::of<std::int8_t>())) {
          const auto a = strict_array<std::int8_t>(fn, "codes", codes);
          py::gil_scoped_release r;
          mk::pack_bits(a.data(), n, bits, out.mutable_data());
        } else {
          const auto a = strict_array<std::uint8_t>(fn, "codes", codes);
          py::gil_scoped_release r;
          mk::pack_bits(a.data(), n, bits, out.mutable_data());
        }
        return out;
      },
      "codes"_a, "bits"_a,
      "Packs the low `bits` bits of each uint8 or int8 code into a little-endian bit stream (docs/NUMERICS.md, "
      "'Bit packing'); returns packed_size(codes.size, bits) bytes.");
  m.def(
      "unpack_bits",
      [](py::object packed_, std::ptrdiff_t n, int bits, bool is_signed) -> py::array {
        const char* fn = "unpack_bits";
        const auto packed = strict_array<std::uint8_t>(fn, "packed", packed_);
        const std::ptrdiff_t need = mk::packed_size(n, bits);
        if (packed.ndim() != 1 || packed.shape(0) != need)
          mixq::detail::fail(fn, ": packed must hold packed_size(n=", n, ", bits=", bits, ") = ", need,
                             " bytes (1-D), got shape ", shape_string(packed));
        if (is_signed) {
          py::array_t<std::int8_t> c(n);
          py::gil_scoped_release r;
          mk::unpack_bits(packed.data(), n, bits, c.mutable_data());
          return c;
        }
        py::array_t<std::uint8_t> c(n);
        py::gil_scoped_release r;
        mk::unpack_bits(packed.data(), n, bits, c.mutable_data());
        return c;
      },
      "packed"_a, "n"_a, "bits"_a, "signed"_a = false,
      "Unpacks n codes of `bits` bits: uint8 in [0, 2^bits), or with signed=True int8 sign-extended.");
  m.def(
      "minmax",
      [](py::object x_) {
        const auto x = strict_array<float>("minmax", "x", x_);
        mk::MinMax r{};
        {
          py::gil_scoped_release g;
          r = mk::minmax(x.data(), static_cast<std::ptrdiff_t>(x.size()));
        }
        return py::make_tuple(r.min, r.max);
      },
      "x"_a, "(min, max) of the non-NaN values of a float32 array; (+inf, -inf) when there is none.");
}

void bind_io(py::module_& m) {
  py::class_<QuantSpec>(m, "QuantSpec", R"doc(
How a tensor is quantized: bit_width (1..16), signed or unsigned codes, symmetric (zero point 0) or affine,
narrow range, granularity ('per_tensor', 'per_channel' on `axis`, 'per_group' of `group_size` elements of the
last axis) and power-of-two scales. qmin and qmax follow from these.)doc")
      .def(py::init([](int bit_width, bool is_signed, bool symmetric, bool narrow_range, const std::string& granularity,
                       int axis, std::int64_t group_size, bool power_of_two) {
             QuantSpec s;
             s.bit_width = bit_width;
             s.is_signed = is_signed;
             s.symmetric = symmetric;
             s.narrow_range = narrow_range;
             s.granularity = granularity_of(granularity);
             s.axis = axis;
             s.group_size = group_size;
             s.scale_restriction = power_of_two ? ScaleRestriction::power_of_two : ScaleRestriction::free;
             s.validate();
             return s;
           }),
           "bit_width"_a = 8, "is_signed"_a = true, "symmetric"_a = true, "narrow_range"_a = false,
           "granularity"_a = "per_tensor", "axis"_a = 0, "group_size"_a = 0, "power_of_two"_a = false)
      .def_readonly("bit_width", &QuantSpec::bit_width, "Bits per code (1..16).")
      .def_readonly("is_signed", &QuantSpec::is_signed, "Signed (two's complement) or unsigned codes.")
      .def_readonly("symmetric", &QuantSpec::symmetric, "Zero point 0 (True) or affine.")
      .def_readonly("narrow_range", &QuantSpec::narrow_range, "The most negative (signed) or zero (unsigned) code is unused.")
      .def_property_readonly("granularity", [](const QuantSpec& s) { return std::string(to_string(s.granularity)); },
                             "'per_tensor', 'per_channel' or 'per_group'.")
      .def_readonly("axis", &QuantSpec::axis, "Channel axis of a per_channel spec (negative counts from the end).")
      .def_readonly("group_size", &QuantSpec::group_size, "Elements per group of a per_group spec.")
      .def_property_readonly("power_of_two", [](const QuantSpec& s) { return s.scale_restriction == ScaleRestriction::power_of_two; },
                             "Whether scales are restricted to powers of two.")
      .def_property_readonly("qmin", &QuantSpec::qmin, "Smallest integer code.")
      .def_property_readonly("qmax", &QuantSpec::qmax, "Largest integer code.")
      .def("__eq__", [](const QuantSpec& a, const QuantSpec& b) { return a == b; })
      .def("__repr__", [](const QuantSpec& s) {
        return "<mixq.QuantSpec " + std::to_string(s.bit_width) + " bits " + (s.is_signed ? "signed " : "unsigned ") +
               (s.symmetric ? "symmetric " : "affine ") + to_string(s.granularity) + ">";
      });

  py::class_<QuantizedTensor>(m, "QuantizedTensor", R"doc(
A quantized tensor: shape, QuantSpec, one scale and zero point per quantization group, and the integer codes
bit-packed at the bit-width (docs/FORMAT.md). Make one with QuantizedTensor.quantize (from float32 values) or
from_codes / from_packed.)doc")
      .def_static(
          "quantize",
          [](py::object x_, const QuantSpec& spec, py::object scales, py::object zero_points) {
            const auto x = strict_array<float>("QuantizedTensor.quantize", "x", x_);
            std::vector<float> s = to_vector<float>(real_array("QuantizedTensor.quantize", "scales", scales, 1));
            std::vector<std::int32_t> z =
                zero_points.is_none() ? std::vector<std::int32_t>(s.size(), 0)
                                      : to_vector<std::int32_t>(integer_array("QuantizedTensor.quantize", "zero_points", zero_points, 1));
            const Shape shape = shape_of(x);
            switch (spec.granularity) {
              case Granularity::per_tensor: return quantize_with<Granularity::per_tensor>(x.data(), shape, spec, s, z);
              case Granularity::per_channel: return quantize_with<Granularity::per_channel>(x.data(), shape, spec, s, z);
              default: return quantize_with<Granularity::per_group>(x.data(), shape, spec, s, z);
            }
          },
          "x"_a, "spec"_a, "scales"_a, "zero_points"_a = py::none(),
          "Quantizes a float32 array with the given scales and zero points (one per group of the spec; None: zeros). "
          "NaN quantizes to the zero point.")
      .def_static(
          "from_codes",
          [](std::vector<std::int64_t> shape, const QuantSpec& spec, py::object scales, py::object zero_points,
             py::object codes) {
            const auto c = strict_array<std::int32_t>("QuantizedTensor.from_codes", "codes", codes);
            std::int64_t n = 1;
            for (const std::int64_t e : shape) {
              if (e < 0 || (e != 0 && n > INT64_MAX / e))
                mixq::detail::fail("QuantizedTensor.from_codes: invalid shape extent ", e);
              n *= e;
            }
            if (static_cast<std::int64_t>(c.size()) != n)
              mixq::detail::fail("QuantizedTensor.from_codes: ", c.size(), " codes for a shape of ", n, " elements");
            return QuantizedTensor::from_codes(
                shape, spec, to_vector<float>(real_array("QuantizedTensor.from_codes", "scales", scales, 1)),
                to_vector<std::int32_t>(integer_array("QuantizedTensor.from_codes", "zero_points", zero_points, 1)), c.data());
          },
          "shape"_a, "spec"_a, "scales"_a, "zero_points"_a, "codes"_a,
          "From unpacked int32 codes (numel of them, each in [qmin, qmax]).")
      .def_static(
          "from_packed",
          [](std::vector<std::int64_t> shape, const QuantSpec& spec, py::object scales, py::object zero_points,
             py::object packed) {
            const auto p = strict_array<std::uint8_t>("QuantizedTensor.from_packed", "packed", packed);
            return QuantizedTensor::from_packed(
                shape, spec, to_vector<float>(real_array("QuantizedTensor.from_packed", "scales", scales, 1)),
                to_vector<std::int32_t>(integer_array("QuantizedTensor.from_packed", "zero_points", zero_points, 1)),
                std::vector<std::uint8_t>(p.data(), p.data() + p.size()));
          },
          "shape"_a, "spec"_a, "scales"_a, "zero_points"_a, "packed"_a,
          "From packed codes (ceil(numel * bit_width / 8) bytes, docs/FORMAT.md).")
      .def_property_readonly("shape", [](const QuantizedTensor& t) { return py::tuple(py::cast(t.shape())); },
                             "The logical shape (a tuple).")
      .def_property_readonly("spec", &QuantizedTensor::spec, "The QuantSpec.")
      .def_property_readonly("numel", &QuantizedTensor::numel, "Number of elements.")
      .def_property_readonly("bit_width", &QuantizedTensor::bit_width, "Bits per code.")
      .def_property_readonly("scales", [](const QuantizedTensor& t) { return to_numpy(t.scales()); },
                             "One scale per quantization group (float32 array).")
      .def_property_readonly("zero_points", [](const QuantizedTensor& t) { return to_numpy(t.zero_points()); },
                             "One zero point per quantization group (int32 array).")
      .def_property_readonly("packed_codes", [](const QuantizedTensor& t) { return to_numpy(t.packed_codes()); },
                             "The packed codes (uint8 array).")
      .def_property_readonly("storage_bytes", &QuantizedTensor::storage_bytes, "Bytes of codes, scales and zero points.")
      .def("codes", [](const QuantizedTensor& t) {
        std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
        py::array_t<std::int32_t> a(shape);
        t.unpack(a.mutable_data());
        return a;
      }, "The unpacked integer codes (int32, the tensor's shape).")
      .def("dequantize", [](const QuantizedTensor& t) {
        std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
        py::array_t<float> a(shape);
        t.dequantize(a.mutable_data());
        return a;
      }, "(code - zero_point) * scale of each element (float32, the tensor's shape).")
      .def("__eq__", [](const QuantizedTensor& a, const QuantizedTensor& b) { return a == b; })
      .def("__repr__", [](const QuantizedTensor& t) {
        return "<mixq.QuantizedTensor " + std::to_string(t.numel()) + " elements, " + std::to_string(t.bit_width()) +
               " bits, " + std::to_string(t.storage_bytes()) + " bytes>";
      });

  m.def(
      "write_quantized_model",
      [](const std::string& path, const std::map<std::string, QuantizedTensor>& quantized, py::dict floats,
         const std::map<std::string, std::string>& metadata) {
        io::QuantizedModel model;
        model.quantized = quantized;
        model.metadata = metadata;
        for (const auto& item : floats) {
          const std::string name = item.first.cast<std::string>();
          const auto a = strict_array<float>("write_quantized_model", ("floats['" + name + "']").c_str(), item.second);
          io::FloatTensor t;
          t.shape = shape_of(a);
          t.values.assign(a.data(), a.data() + a.size());
          model.floats.emplace(name, std::move(t));
        }
        py::gil_scoped_release r;
        io::write_quantized_model(path, model);
      },
      "path"_a, "quantized"_a, "floats"_a = py::dict(), "metadata"_a = std::map<std::string, std::string>{},
      R"doc(Writes a compressed model in mixq's quantized safetensors format (docs/FORMAT.md): quantized: name ->
QuantizedTensor; floats: name -> float32 array (biases, BatchNorm); metadata: str -> str (keys 'mixq.*' are
reserved). Everything is validated first; the file is written atomically (temporary file, then rename).)doc");
  m.def(
      "read_quantized_model",
      [](const std::string& path) {
        io::QuantizedModel model;
        {
          py::gil_scoped_release r;
          model = io::read_quantized_model(path);
        }
        py::dict floats;
        for (const auto& [name, t] : model.floats) floats[py::str(name)] = float_tensor_array(t);
        return py::make_tuple(model.quantized, floats, model.metadata);
      },
      "path"_a,
      "Reads a compressed model: (quantized: dict name -> QuantizedTensor, floats: dict name -> float32 array, "
      "metadata: dict). Every offset, shape, spec and code is validated.");
  m.def(
      "read_safetensors",
      [](const std::string& path) {
        std::map<std::string, io::FloatTensor> t;
        {
          py::gil_scoped_release r;
          t = io::read_safetensors(path);
        }
        py::dict out;
        for (const auto& [name, v] : t) out[py::str(name)] = float_tensor_array(v);
        return out;
      },
      "path"_a, "Every tensor of a safetensors file (F32, F16, BF16 or F64) as float32 arrays: dict name -> array.");
}

}  // namespace mixq::python

PYBIND11_MODULE(_core, m) {
  namespace mp = mixq::python;
  m.doc() = "mixq: exact mixed-precision bit-width search, quantization kernels and the quantized safetensors format "
            "(the C++ library's Python bindings).";
  m.attr("__version__") = std::to_string(MIXQ_VERSION_MAJOR) + "." + std::to_string(MIXQ_VERSION_MINOR) + "." +
                          std::to_string(MIXQ_VERSION_PATCH);
  // mixq::error derives from std::invalid_argument, which pybind11 maps to ValueError; registered explicitly so
  // that the mapping is part of this module's contract.
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const mixq::error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  mp::bind_search(m);
  mp::bind_kernels(m);
  mp::bind_io(m);
}
