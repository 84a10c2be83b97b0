#pragma once
/// @file
/// Command-line parsing for mixq's own programs (examples/, mixq-search): one behaviour for all of them, that of
/// a Unix tool. Not part of the library's stable API (namespace mixq::detail::cli).
///
/// - `--help` / `-h`: usage with every option, its default and the program's notes on stdout, exit 0.
/// - `--version`: "PROGRAM (mixq X.Y.Z)" on stdout, exit 0.
/// - An unknown argument, a missing value, a value that is not entirely a number (`2x`, `1e`, ``), out of the
///   option's range, or not one of its choices: "PROGRAM: MESSAGE" and the usage on stderr, exit 2.
/// - A bad MIXQ_FORCE_ISA (unknown name, or an ISA this CPU lacks) or MIXQ_NN_ENGINE (unknown name, or dnnl when
///   oneDNN is not compiled in, nn/gemm.hpp): one line on stderr, exit 2. Names are matched case-insensitively.
///
///   namespace cli = mixq::detail::cli;
///   cli::Parser p("train_fashion_mnist", "Trains ... on Fashion-MNIST.");
///   p.option("--epochs", epochs, "N", "training epochs", 1, 100000);
///   p.choice("--model", model, {"mlp", "resnet"}, "the network");
///   p.flag("--augment", augment, "random crops and flips");
///   if (auto code = p.parse(argc, argv)) return *code;
///   return cli::run("train_fashion_mnist", [&] { ...; return 0; });   // errors: one line, exit 1 (2 if bad input)

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/kernels/dispatch.hpp"
#include "mixq/nn/gemm.hpp"
#include "mixq/version.hpp"

namespace mixq::detail::cli {

/// A message made printable: bytes outside printable ASCII become \xNN, the text is cut after `limit` bytes
/// (binary input is never echoed raw to a terminal).
inline std::string printable(const std::string& s, std::size_t limit = 400) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out += ' ';
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// Strict integer parse: the whole of `text` is a base-10 integer in [lo, hi]; else mixq::error naming `name`.
inline long long parse_integer(const std::string& name, const std::string& text, long long lo, long long hi) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  const bool whole = !text.empty() && end == text.c_str() + text.size() && text.find_first_of(" \t") == std::string::npos;
  if (!whole || errno == ERANGE) mixq::detail::fail(name, " expects an integer, got '", printable(text), "'");
  if (v < lo || v > hi) mixq::detail::fail(name, " must be in [", lo, ", ", hi, "], got ", v);
  return v;
}

/// Strict real parse: the whole of `text` is a finite number in [lo, hi]; else mixq::error naming `name`.
inline double parse_real(const std::string& name, const std::string& text, double lo, double hi) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  const bool whole = !text.empty() && end == text.c_str() + text.size() && text.find_first_of(" \t") == std::string::npos;
  if (!whole || !std::isfinite(v)) mixq::detail::fail(name, " expects a finite number, got '", printable(text), "'");
  if (v < lo || v > hi) mixq::detail::fail(name, " must be in [", lo, ", ", hi, "], got ", v);
  return v;
}

/// Checks MIXQ_FORCE_ISA now (the kernels read it on first use): "PROGRAM: MIXQ_FORCE_ISA: ..." on `err` and exit
/// code 2 when it is bad, nothing otherwise.
inline std::optional<int> check_isa_environment(const std::string& program, std::ostream& err = std::cerr) {
  try {
    (void)mixq::kernels::active_isa();
    (void)mixq::nn::gemm_engine();  // MIXQ_NN_ENGINE is read here, before the program writes anything
  } catch (const std::exception& e) {
    err << program << ": " << printable(e.what()) << "\n";
    return 2;
  }
  return std::nullopt;
}

/// Runs a program's body: an exception ends it with one line "PROGRAM: MESSAGE" on stderr and exit code 2 for
/// mixq::error (bad input: arguments, files, data) or 1 for anything else.
inline int run(const std::string& program, const std::function<int()>& body, std::ostream& err = std::cerr) {
  try {
    return body();
  } catch (const mixq::error& e) {
    err << program << ": " << printable(e.what()) << "\n";
    return 2;
  } catch (const std::exception& e) {
    err << program << ": " << printable(e.what()) << "\n";
    return 1;
  }
}

/// A declarative parser: options are registered with the variable they set (its value before parse() is the
/// default shown by --help), then parse() fills them.
class Parser {
 public:
  /// `program`: the name used in messages; `summary`: what the program does (first lines of --help).
  Parser(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  /// A switch without a value: sets `target` to `value` when given.
  void flag(const std::string& name, bool& target, const std::string& help, bool value = true) {
    add(name, "", help, "", 0, [&target, value](const std::vector<std::string>&) { target = value; });
  }

  /// An integral option (int, long, std::int64_t, std::uint64_t, ...) with a value in [lo, hi].
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  void option(const std::string& name, T& target, const std::string& metavar, const std::string& help,
              long long lo = std::numeric_limits<long long>::min(), long long hi = std::numeric_limits<long long>::max()) {
    if constexpr (std::is_unsigned_v<T>) lo = std::max(lo, 0LL);
    lo = std::max<long long>(lo, static_cast<long long>(std::numeric_limits<T>::min()));
    if constexpr (sizeof(T) < sizeof(long long))
      hi = std::min<long long>(hi, static_cast<long long>(std::numeric_limits<T>::max()));
    std::ostringstream d;
    d << +target;
    add(name, metavar, help, d.str(), 1, [&target, name, lo, hi](const std::vector<std::string>& v) {
      target = static_cast<T>(parse_integer(name, v[0], lo, hi));
    });
  }

  /// A real option (float, double) with a finite value in [lo, hi].
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  void option(const std::string& name, T& target, const std::string& metavar, const std::string& help,
              double lo = -std::numeric_limits<double>::max(), double hi = std::numeric_limits<double>::max()) {
    std::ostringstream d;
    d << target;
    add(name, metavar, help, d.str(), 1, [&target, name, lo, hi](const std::vector<std::string>& v) {
      target = static_cast<T>(parse_real(name, v[0], lo, hi));
    });
  }

  /// A string option (a path, a list); the default is shown unless empty.
  void option(const std::string& name, std::string& target, const std::string& metavar, const std::string& help) {
    add(name, metavar, help, target, 1, [&target](const std::vector<std::string>& v) { target = v[0]; });
  }

  /// A string option whose value must be one of `choices`.
  void choice(const std::string& name, std::string& target, const std::vector<std::string>& choices,
              const std::string& help) {
    std::string meta;
    for (const std::string& c : choices) meta += (meta.empty() ? "" : "|") + c;
    add(name, meta, help, target, 1, [&target, name, choices, meta](const std::vector<std::string>& v) {
      for (const std::string& c : choices)
        if (v[0] == c) {
          target = v[0];
          return;
        }
      mixq::detail::fail(name, " must be one of ", meta, ", got '", printable(v[0]), "'");
    });
  }

  /// An option taking `count` values (e.g. `--limpq NETWORK FILE`), handed to `set` (which may throw mixq::error).
  void option_values(const std::string& name, int count, const std::string& metavar, const std::string& help,
                     std::function<void(const std::vector<std::string>&)> set) {
    add(name, metavar, help, "", count, std::move(set));
  }

  /// A positional argument (at most one per call, in order); `required` ones must be given.
  void positional(const std::string& metavar, std::string& target, const std::string& help, bool required = true) {
    positionals_.push_back({metavar, help, &target, required});
  }

  /// Replaces the default --help shows for `name` (e.g. "1 with --quick, 5 with --full" for a mode default).
  void set_default_text(const std::string& name, const std::string& text) {
    for (Spec& sp : specs_)
      if (sp.name == name) sp.default_value = text;
  }

  /// Text printed after the options by --help (formats, exit codes, examples).
  void notes(const std::string& text) { notes_ = text; }

  /// True when `name` was given on the command line (after parse()).
  bool given(const std::string& name) const {
    for (const Spec& s : specs_)
      if (s.name == name) return s.given;
    return false;
  }

  /// The one-line synopsis and the option list (what --help prints before the notes).
  std::string usage() const {
    std::ostringstream os;
    os << "usage: " << program_ << " [options]";
    for (const Pos& p : positionals_) os << (p.required ? " " : " [") << p.metavar << (p.required ? "" : "]");
    os << "\n";
    return os.str();
  }

  /// The full --help text.
  std::string help() const {
    std::ostringstream os;
    os << usage() << "\n" << summary_ << "\n\noptions:\n";
    auto line = [&os](const std::string& left, const std::string& text) {
      os << "  " << left;
      if (left.size() < 26) os << std::string(26 - left.size(), ' ');
      else os << "\n" << std::string(28, ' ');
      os << text << "\n";
    };
    for (const Spec& s : specs_) {
      std::string text = s.help;
      if (!s.default_value.empty()) text += " (default " + s.default_value + ")";
      line(s.name + (s.metavar.empty() ? "" : " " + s.metavar), text);
    }
    for (const Pos& p : positionals_) line(p.metavar, p.help);
    line("-h, --help", "print this help and exit");
    line("--version", "print the version and exit");
    if (!notes_.empty()) os << "\n" << notes_ << (notes_.back() == '\n' ? "" : "\n");
    return os.str();
  }

  /// Parses argv (argv[0] is skipped). Returns std::nullopt when the program should run, else its exit code:
  /// 0 after --help or --version, 2 after an argument error or a bad MIXQ_FORCE_ISA (message and usage on err).
  std::optional<int> parse(const std::vector<std::string>& args, std::ostream& out = std::cout,
                           std::ostream& err = std::cerr) {
    std::size_t next_positional = 0;
    try {
      for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--help" || a == "-h") {
          out << help();
          return 0;
        }
        if (a == "--version") {
          out << program_ << " (mixq " << mixq::version_string << ")\n";
          return 0;
        }
        Spec* spec = nullptr;
        for (Spec& s : specs_)
          if (s.name == a) spec = &s;
        if (spec != nullptr) {
          if (i + static_cast<std::size_t>(spec->count) >= args.size()) {
            mixq::detail::fail(a, " needs ", spec->count == 1 ? "a value" : std::to_string(spec->count) + " values",
                               spec->metavar.empty() ? "" : " (" + spec->metavar + ")");
          }
          std::vector<std::string> values(args.begin() + static_cast<std::ptrdiff_t>(i + 1),
                                          args.begin() + static_cast<std::ptrdiff_t>(i + 1 + spec->count));
          spec->set(values);
          spec->given = true;
          i += static_cast<std::size_t>(spec->count);
        } else if (a.size() > 1 && a[0] == '-') {
          mixq::detail::fail("unknown option '", printable(a), "'");
        } else if (next_positional < positionals_.size()) {
          *positionals_[next_positional++].target = a;
        } else {
          mixq::detail::fail("unexpected argument '", printable(a), "'");
        }
      }
      for (std::size_t p = next_positional; p < positionals_.size(); ++p)
        if (positionals_[p].required) mixq::detail::fail("missing ", positionals_[p].metavar);
    } catch (const std::exception& e) {
      err << program_ << ": " << printable(e.what()) << "\n" << usage() << "Try '" << program_ << " --help'.\n";
      return 2;
    }
    return check_isa_environment(program_, err);
  }

  /// parse() from main's arguments.
  std::optional<int> parse(int argc, char** argv, std::ostream& out = std::cout, std::ostream& err = std::cerr) {
    return parse(std::vector<std::string>(argv, argv + argc), out, err);
  }

 private:
  struct Spec {
    std::string name, metavar, help, default_value;
    int count = 0;
    std::function<void(const std::vector<std::string>&)> set;
    bool given = false;
  };
  struct Pos {
    std::string metavar, help;
    std::string* target;
    bool required;
  };

  void add(const std::string& name, const std::string& metavar, const std::string& help, const std::string& def,
           int count, std::function<void(const std::vector<std::string>&)> set) {
    specs_.push_back({name, metavar, help, def, count, std::move(set), false});
  }

  std::string program_, summary_, notes_;
  std::vector<Spec> specs_;
  std::vector<Pos> positionals_;
};

}  // namespace mixq::detail::cli
