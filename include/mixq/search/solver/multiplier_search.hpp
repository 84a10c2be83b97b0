#pragma once
/// @file
/// The surrogate multipliers (step 3 of the method in mixq/search/solver.hpp): mu on the unit sphere, chosen to
/// maximise the surrogate LP bound (the surrogate dual). K = 2: bisection on the angle steered by which row the LP
/// solution exceeds, to 1/4096 of the quarter circle, or from a warm angle (a sweep's prediction) by galloping to a
/// bracket first; K >= 3: coordinate golden-section search. Every evaluation is a value-only LP
/// (lp_relaxation.hpp); the last one builds the full LP at the best multipliers. Uses: engine.hpp,
/// lp_relaxation.hpp.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "mixq/search/solver/lp_relaxation.hpp"

namespace mixq::search::detail {

inline std::vector<double> Engine::mu_of(const std::vector<double>& ph) const {
  std::vector<double> m(static_cast<std::size_t>(K_), 1.0);
  if (K_ == 2) {
    m[0] = std::cos(ph[1]);
    m[1] = std::sin(ph[1]);
  } else {
    for (int k = 1; k < K_; ++k) m[static_cast<std::size_t>(k)] = std::tan(ph[static_cast<std::size_t>(k)]);
  }
  return m;
}

inline double Engine::eval_weights(const std::vector<double>& ph, bool value_only) {
  const std::vector<double> mu = mu_of(ph);
  std::vector<double> w(static_cast<std::size_t>(K_));
  for (int k = 0; k < K_; ++k)
    w[static_cast<std::size_t>(k)] =
        mu[static_cast<std::size_t>(k)] / static_cast<double>(std::max<std::int64_t>(rb_[static_cast<std::size_t>(k)], 1));
  return build_lp(w, value_only);
}

/// K = 2: start the multiplier search at angle a, first stepping by step (see bisect_weights); ignored otherwise.
inline void Engine::set_angle(double a, double step) {
  const double half_pi = 1.5707963267948966;
  if (K_ != 2 || !(a >= 0.0 && a < half_pi) || !(step > 0.0)) return;
  phi_.assign(2, half_pi / 2);
  phi_[1] = a;
  warm_angle_ = true;
  warm_step_ = step;
}

// K = 2: the surrogate dual by bisection on the angle. The LP solution of the surrogate uses u0, u1 of the two
// rows; when it exceeds row 0 the best angle puts more weight on row 0 (smaller angle), when it exceeds row 1,
// less; when it meets both it is optimal for the two-row LP and the bound cannot improve. The search starts at
// phi_[1] and ends when the bracket is 1/4096 of the quarter circle (12 evaluations from pi/4). With a warm angle
// (predicted from the last budgets of a sweep) the next evaluations step away from it on the side the last one
// points to, by warm_step_ and then twice as far each time, until the optimum is bracketed; bisection goes on from
// there.
inline double Engine::bisect_weights() {
  const double half_pi = 1.5707963267948966;
  const double width = half_pi / 4096.0;
  double lo = 0.0, hi = half_pi - 1e-9;
  double best = -std::numeric_limits<double>::infinity(), best_th = phi_[1];
  std::vector<double> ph = phi_;
  bool gallop = warm_angle_;
  double step = warm_step_;
  int dir = 0;  // side the last evaluation points to: -1 smaller angles, +1 larger
  for (int it = 0; it < 24 && hi - lo > width; ++it) {
    if (it == 0) {
      ph[1] = phi_[1];
    } else if (gallop) {
      // step away from the last angle on the side it points to; bisect once the step would leave the bracket
      const double next = ph[1] + dir * step;
      step *= 2.0;
      if (next > lo && next < hi) ph[1] = next;
      else {
        gallop = false;
        ph[1] = 0.5 * (lo + hi);
      }
    } else {
      ph[1] = 0.5 * (lo + hi);
    }
    const double f = eval_weights(ph);
    if (std::isinf(f)) return f;
    if (f > best) {
      best = f;
      best_th = ph[1];
    }
    const auto excess = [&](int k) {
      const double b = static_cast<double>(rb_[static_cast<std::size_t>(k)]);
      return (lp_u_[k] - b) / std::max(b, 1.0);
    };
    const double v0 = excess(0), v1 = excess(1);
    int d = 0;
    if (v0 > 1e-12 && v0 >= v1) {
      hi = ph[1];
      d = -1;
    } else if (v1 > 1e-12) {
      lo = ph[1];
      d = 1;
    } else {
      break;
    }
    if (it > 0 && d != dir) gallop = false;  // the direction turned: the optimum is bracketed
    dir = d;
  }
  phi_[1] = best_th;
  return eval_weights(phi_, false);
}

// Surrogate multipliers mu on the unit sphere (angles phi_), chosen by coordinate golden-section search
// maximising the surrogate LP bound; search = false reuses the current angles. Returns +inf as soon as one
// surrogate is infeasible (then so is the problem restricted to the active options).
inline double Engine::choose_weights(bool search) {
  const double half_pi = 1.5707963267948966;
  gather_lp();
  if (phi_.size() != static_cast<std::size_t>(K_)) phi_.assign(static_cast<std::size_t>(K_), half_pi / 2);
  if (K_ == 1 || !search) return eval_weights(phi_, false);
  if (K_ == 2) return bisect_weights();
  double best = eval_weights(phi_);
  if (std::isinf(best)) return best;
  const int passes = K_ == 2 ? 1 : 2;
  const int iters = 12;
  const double gr = 0.6180339887498949;
  for (int pass = 0; pass < passes; ++pass) {
    for (int k = 1; k < K_; ++k) {
      double lo = 0.0, hi = half_pi - 1e-9;
      std::vector<double> ph = phi_;
      double x1 = hi - gr * (hi - lo), x2 = lo + gr * (hi - lo);
      ph[static_cast<std::size_t>(k)] = x1;
      double f1 = eval_weights(ph);
      if (std::isinf(f1)) return f1;
      ph[static_cast<std::size_t>(k)] = x2;
      double f2 = eval_weights(ph);
      if (std::isinf(f2)) return f2;
      for (int it = 0; it < iters; ++it) {
        if (f1 < f2) {
          lo = x1; x1 = x2; f1 = f2; x2 = lo + gr * (hi - lo);
          ph[static_cast<std::size_t>(k)] = x2;
          f2 = eval_weights(ph);
          if (std::isinf(f2)) return f2;
        } else {
          hi = x2; x2 = x1; f2 = f1; x1 = hi - gr * (hi - lo);
          ph[static_cast<std::size_t>(k)] = x1;
          f1 = eval_weights(ph);
          if (std::isinf(f1)) return f1;
        }
      }
      const double xb = f1 >= f2 ? x1 : x2, fb = std::max(f1, f2);
      if (fb > best) {
        best = fb;
        phi_[static_cast<std::size_t>(k)] = xb;
      }
    }
  }
  return eval_weights(phi_, false);
}

}  // namespace mixq::search::detail
