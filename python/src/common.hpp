#pragma once
// Shared helpers of the mixq Python module's translation units: strict NumPy array checks (dtype, rank,
// C-contiguity, writability; never a silent conversion of a kernel's input) and the conversions of small
// search inputs (lists or arrays) to C++ vectors.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mixq/error.hpp"

namespace mixq::python {

namespace py = pybind11;

/// The dtype name of an array ("float64", "int32", ...).
inline std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

/// Shape of an array as a string "(2, 3)".
inline std::string shape_string(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

/// `obj` as a C-contiguous array of T without a copy; throws mixq::error (ValueError) naming the function and
/// argument for another type, another dtype, a non-contiguous array or (writable) a read-only array.
template <class T>
py::array_t<T> strict_array(const char* fn, const char* arg, const py::handle& obj, bool writable = false) {
  if (!py::isinstance<py::array>(obj))
    mixq::detail::fail(fn, ": ", arg, " must be a numpy.ndarray of dtype ", py::str(py::dtype::of<T>()).cast<std::string>(),
                       ", got ", py::str(py::type::of(obj)).cast<std::string>());
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>()))
    mixq::detail::fail(fn, ": ", arg, " must have dtype ", py::str(py::dtype::of<T>()).cast<std::string>(), ", got ",
                       dtype_name(a), " (convert it explicitly, e.g. with .astype)");
  if (!(a.flags() & py::array::c_style))
    mixq::detail::fail(fn, ": ", arg, " must be C-contiguous (got shape ", shape_string(a),
                       " with other strides); mixq does not copy kernel inputs: pass numpy.ascontiguousarray(", arg,
                       ")");
  if (writable && !a.writeable()) mixq::detail::fail(fn, ": ", arg, " is read-only");
  return py::array_t<T>(py::reinterpret_borrow<py::array_t<T>>(a));
}

/// Converts a list or array of real numbers to doubles (small search inputs: a copy by value). Bool, complex
/// and object arrays are rejected; `ndim` is the rank the input must have.
inline py::array_t<double> real_array(const char* fn, const char* arg, const py::handle& obj, int ndim) {
  py::array a = py::module_::import("numpy").attr("asarray")(obj);
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u')
    mixq::detail::fail(fn, ": ", arg, " must hold real numbers, got dtype ", dtype_name(a));
  if (a.ndim() != ndim)
    mixq::detail::fail(fn, ": ", arg, " must have ", ndim, " dimension(s), got shape ", shape_string(a));
  return py::array_t<double, py::array::c_style | py::array::forcecast>(a);
}

/// Converts a list or array of integers to int64 (a float array is rejected even when its values are integral:
/// uses and budgets are exact integers).
inline py::array_t<std::int64_t> integer_array(const char* fn, const char* arg, const py::handle& obj, int ndim) {
  py::array a = py::module_::import("numpy").attr("asarray")(obj);
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u')
    mixq::detail::fail(fn, ": ", arg, " must hold integers, got dtype ", dtype_name(a));
  if (kind == 'u' && a.dtype().itemsize() == 8) {
    // uint64 values above INT64_MAX would wrap
    py::object too_big = py::module_::import("numpy").attr("any")(a > py::int_(INT64_MAX));
    if (too_big.cast<bool>()) mixq::detail::fail(fn, ": ", arg, " has a value above 2^63 - 1");
  }
  if (a.ndim() != ndim)
    mixq::detail::fail(fn, ": ", arg, " must have ", ndim, " dimension(s), got shape ", shape_string(a));
  return py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>(a);
}

/// Converts a list or array of booleans (dtype bool only) to a C-contiguous bool array of rank ndim.
inline py::array_t<bool> bool_array(const char* fn, const char* arg, const py::handle& obj, int ndim) {
  py::array a = py::module_::import("numpy").attr("asarray")(obj);
  if (a.dtype().kind() != 'b') mixq::detail::fail(fn, ": ", arg, " must hold booleans, got dtype ", dtype_name(a));
  if (a.ndim() != ndim)
    mixq::detail::fail(fn, ": ", arg, " must have ", ndim, " dimension(s), got shape ", shape_string(a));
  return py::array_t<bool, py::array::c_style | py::array::forcecast>(a);
}

/// A std::vector<T> from a 1-D converted array.
template <class T, class A>
std::vector<T> to_vector(const A& a) {
  auto r = a.template unchecked<1>();
  std::vector<T> v(static_cast<std::size_t>(r.shape(0)));
  for (py::ssize_t i = 0; i < r.shape(0); ++i) v[static_cast<std::size_t>(i)] = static_cast<T>(r(i));
  return v;
}

/// A 1-D NumPy array holding a copy of v.
template <class T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

void bind_search(py::module_& m);
void bind_kernels(py::module_& m);
void bind_io(py::module_& m);

}  // namespace mixq::python
