// One-shot weight coupling (Tang et al., CVPR 2024, "Retraining-free Model Quantization via One-Shot
// Weight-Coupling Learning") end to end on Fashion-MNIST with the small ResNet (8 searchable layers):
//   1. float training (or --float FILE),
//   2. one-shot training of the supernet (every policy of bits 2..6 in one set of weights: max subnet + k random
//      subnets per step, KL distillation, IDM, the bit-width scheduler, EMA),
//   3. retraining-free evaluation (BN re-estimated on training images) of the uniform policies and of three
//      searches at the BitOps of uniform W3A3 and W4A4 (greedy, exact solver on supernet sensitivities, LIMPQ on
//      the supernet's step sizes) plus random feasible policies, all searched on held-out training images,
//   4. the retraining-free Pareto frontier over --frontier budgets from W2A2 to W6A6,
//   5. baselines: the same policies trained separately with LSQ QAT from the float model for the same number of
//      steps, and the Kendall tau between one-shot and retrained accuracy.
//
//   oneshot_fashion_mnist                       # --quick: subsets and short schedules, minutes on 2 cores
//   oneshot_fashion_mnist --full --seed 2 --json oneshot_full_s2.json
//   oneshot_fashion_mnist --no-scheduler --no-idm --no-search --no-retrain   # an ablation arm
//
// One seed per run (run it with --seed 1, 2, 3 for the tables). Prints tables; --json FILE writes the report
// (schedule/oneshot_report.hpp describes the fields; scripts/oneshot_plot.py draws the frontier).
#include <mixq/mixq.hpp>
#include <mixq/nn/checkpoint.hpp>
#include <mixq/schedule.hpp>
#include <mixq/detail/cli_args.hpp>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace nn = mixq::nn;
namespace sc = mixq::schedule;
namespace search = mixq::search;

namespace {

struct Args {
  bool full = false;
  std::uint64_t seed = 1;
  std::string data, float_file, save_float, json_file;
  bool no_scheduler = false, no_idm = false, random_freeze = false, coupled = false, qe = false, distribution = false;
  bool per_channel = false;
  bool no_search = false, no_retrain = false, frontier_greedy = false;
  int min_bits = 2;
  int threads = 2;
  int epochs = -1, float_epochs = -1, k = 3, frontier = 20, randoms = 2;
  long train_limit = -1, float_limit = -1, heldout = -1, score_images = -1, batch = 128, test_limit = -1;
  long bn_batches = -1;
  double lr = 0.04, step_lr = -1, idm_weight = 0.01;
};

std::optional<Args> parse(int argc, char** argv, int& exit_code) {
  namespace cli = mixq::detail::cli;
  Args a;
  cli::Parser p("oneshot_fashion_mnist",
                "One-shot weight coupling (Tang et al., CVPR 2024) on Fashion-MNIST: one supernet holds every bit-width\n"
                "policy; greedy, exact and LIMPQ searches with no retraining; the Pareto frontier; retrained baselines.");
  p.flag("--quick", a.full, "training subsets and short schedules, under 10 minutes on 2 cores (the default)", false);
  p.flag("--full", a.full, "the whole training set and the longer schedules of docs/RESULTS.md");
  p.option("--seed", a.seed, "S", "seed of the supernet, sampling and retraining (the float model uses it too)");
  p.option("--data", a.data, "DIR", "Fashion-MNIST folder (default: the Debian package's)");
  p.option("--float", a.float_file, "FILE", "start from this float checkpoint (small ResNet) instead of training one");
  p.option("--save-float", a.save_float, "FILE", "write the trained float checkpoint");
  p.option("--json", a.json_file, "FILE", "write the report as JSON");
  p.flag("--no-scheduler", a.no_scheduler, "train without the bit-width scheduler (ablation)");
  p.flag("--no-idm", a.no_idm, "train without information distortion mitigation (ablation)");
  p.flag("--random-freeze", a.random_freeze, "the scheduler freezes random layers at the same ratio (ablation)");
  p.flag("--per-channel", a.per_channel, "one weight step size per output channel (the paper: per tensor)");
  p.flag("--coupled", a.coupled, "one candidate set for weights and activations (the released ResNet-18 config)");
  p.flag("--qe", a.qe, "add the released code's QE oscillation loss");
  p.flag("--distribution", a.distribution, "add the released code's negative 'distribution' weight decay");
  p.option("--min-bits", a.min_bits, "B", "smallest candidate bit-width (2: bits 2..6; 3: bits 3..6, claim 2)", 2, 5);
  p.option("--epochs", a.epochs, "N", "one-shot training epochs", 1, 100000);
  p.set_default_text("--epochs", "4 with --quick, 10 with --full");
  p.option("--train-limit", a.train_limit, "N", "one-shot training images per epoch (0: all)", 0);
  p.set_default_text("--train-limit", "3000 with --quick, 10000 with --full");
  p.option("--batch", a.batch, "N", "batch size (one-shot training and retraining)", 2, 100000);
  p.option("--lr", a.lr, "X", "peak learning rate of the weights", 1e-8, 10.0);
  p.option("--step-lr", a.step_lr, "X", "Adam learning rate of the step sizes", 0.0, 1.0);
  p.set_default_text("--step-lr", "1e-4 (the brief's scaled value; the paper's code: 1e-5)");
  p.option("--k", a.k, "N", "random subnets per step", 0, 64);
  p.option("--idm-weight", a.idm_weight, "X", "IDM loss weight", 0.0, 100.0);
  p.option("--float-epochs", a.float_epochs, "N", "float training epochs", 1, 10000);
  p.set_default_text("--float-epochs", "2 with --quick, 3 with --full");
  p.option("--float-limit", a.float_limit, "N", "float training images per epoch (0: all)", 0);
  p.set_default_text("--float-limit", "10000 with --quick, all with --full");
  p.option("--heldout", a.heldout, "N", "training images held out for the searches (the last N)", 100);
  p.set_default_text("--heldout", "2000 with --quick, 5000 with --full");
  p.option("--score-images", a.score_images, "N", "held-out images scoring each policy in the searches", 2);
  p.set_default_text("--score-images", "128 with --quick, 1024 with --full");
  p.option("--bn-batches", a.bn_batches, "N", "BN re-estimation batches of 128 training images per evaluated policy", 1);
  p.set_default_text("--bn-batches", "8 with --quick, 32 with --full");
  p.option("--frontier", a.frontier, "N", "budgets of the Pareto frontier (0: none)", 0, 1000);
  p.flag("--frontier-greedy", a.frontier_greedy, "also run the greedy search at every frontier budget");
  p.option("--randoms", a.randoms, "N", "random feasible policies per level", 0, 1000);
  p.flag("--no-search", a.no_search, "only the uniform policies (no searches, no frontier)");
  p.flag("--no-retrain", a.no_retrain, "skip the retrained baselines");
  p.option("--test-limit", a.test_limit, "N", "test images (0: all)", 0);
  p.set_default_text("--test-limit", "the first 2000 with --quick, all with --full");
  p.option("--threads", a.threads, "T", "worker threads", 1, 256);
  p.notes("Prints tables; --json FILE writes the report (schedule/oneshot_report.hpp lists the fields).");
  if (auto code = p.parse(argc, argv)) {
    exit_code = *code;
    return std::nullopt;
  }
  auto dflt = [&](auto& v, auto quick, auto full) {
    if (v < 0) v = a.full ? full : quick;
  };
  dflt(a.epochs, 4, 10);
  dflt(a.train_limit, 3000L, 10000L);
  dflt(a.float_epochs, 2, 3);
  dflt(a.float_limit, 10000L, 0L);
  dflt(a.heldout, 2000L, 5000L);
  dflt(a.score_images, 128L, 1024L);
  dflt(a.bn_batches, 8L, 32L);
  dflt(a.test_limit, 2000L, 0L);
  if (a.step_lr < 0) a.step_lr = 1e-4;
  return a;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string clock_text(double s) {
  char b[32];
  const int m = static_cast<int>(s) / 60, r = static_cast<int>(s) % 60;
  std::snprintf(b, sizeof b, "%dm%02ds", m, r);
  return b;
}

// The images [begin, end) of a set.
mixq::io::ImageSet slice(const mixq::io::ImageSet& s, nn::Index begin, nn::Index end) {
  mixq::io::ImageSet out;
  out.rows = s.rows;
  out.cols = s.cols;
  out.images = s.images.middleRows(begin, end - begin);
  out.labels.assign(s.labels.begin() + begin, s.labels.begin() + end);
  return out;
}

bool feasible(const sc::Supernet& net, const sc::Policy& p) {
  try {
    net.check_policy(p);
    return true;
  } catch (const mixq::error&) {
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<Args> parsed = parse(argc, argv, exit_code);
  if (!parsed) return exit_code;
  const Args& args = *parsed;
  return mixq::detail::cli::run("oneshot_fashion_mnist", [&]() -> int {
    const auto t_start = std::chrono::steady_clock::now();
    nn::set_num_threads(args.threads);
    const auto data = mixq::io::load_fashion_mnist(args.data);
    if (args.heldout >= data.train.size() / 2)
      throw mixq::error("--heldout=" + std::to_string(args.heldout) + " leaves too few training images");
    const nn::Index n_train = data.train.size() - args.heldout;
    const mixq::io::ImageSet train = slice(data.train, 0, n_train);
    const mixq::io::ImageSet heldout = slice(data.train, n_train, data.train.size());
    const bool tty = isatty(fileno(stdout)) != 0;
    sc::OneShotRunReport report;
    report.seed = args.seed;
    std::vector<int> bits;
    for (int b = args.min_bits; b <= 6; ++b) bits.push_back(b);

    // 1. Float model.
    nn::ModelOptions fo;
    fo.seed = args.seed;
    auto float_model = nn::make_resnet(fo);
    auto t0 = std::chrono::steady_clock::now();
    if (!args.float_file.empty()) {
      nn::load_checkpoint(*float_model, args.float_file);
      std::printf("[float] loaded %s\n", args.float_file.c_str());
    } else {
      sc::TrainOptions to;
      to.epochs = args.float_epochs;
      to.train_limit = args.float_limit;
      to.lr = 0.1f;
      to.seed = args.seed;
      to.on_epoch = [&](int e, double loss, double acc) {
        std::printf("[float] epoch %d/%d loss=%.4f train_acc=%.4f (%.0fs)\n", e, args.float_epochs, loss, acc, since(t0));
        std::fflush(stdout);
      };
      sc::train_supervised(*float_model, train, to);
      if (!args.save_float.empty()) nn::save_checkpoint(*float_model, args.save_float);
    }
    report.float_accuracy = sc::evaluate_accuracy(*float_model, data.test, args.test_limit);
    report.timing["float_seconds"] = since(t0);
    std::printf("[float] test_accuracy=%.4f\n", report.float_accuracy);

    // 2. One-shot training.
    sc::SupernetOptions so;
    so.weight_bits = so.activation_bits = bits;
    so.split_candidates = !args.coupled;
    so.per_channel_weights = args.per_channel;
    sc::Supernet net("resnet", so, args.seed);
    net.load_float(*float_model);
    sc::OneShotOptions oo;
    oo.epochs = args.epochs;
    oo.batch_size = args.batch;
    oo.train_limit = args.train_limit;
    oo.lr = static_cast<float>(args.lr);
    oo.step_lr = static_cast<float>(args.step_lr);
    oo.random_subnets = args.k;
    oo.idm_weight = args.no_idm ? 0.f : static_cast<float>(args.idm_weight);
    oo.scheduler = !args.no_scheduler;
    oo.random_freeze = args.random_freeze;
    oo.qe_loss = args.qe;
    oo.distribution_loss = args.distribution;
    oo.seed = args.seed;
    const nn::Index total = sc::OneShotTrainer::total_steps(oo, train.size());
    sc::OneShotTrainer trainer(net, oo, total);
    report.settings = {{"mode", args.full ? "full" : "quick"},
                       {"candidate_bits", bits},
                       {"split_candidates", !args.coupled},
                       {"per_channel_weights", args.per_channel},
                       {"epochs", args.epochs},
                       {"train_images_per_epoch", args.train_limit > 0 ? args.train_limit : n_train},
                       {"heldout_images", args.heldout},
                       {"score_images", args.score_images},
                       {"batch", args.batch},
                       {"steps", total},
                       {"lr", args.lr},
                       {"step_lr", args.step_lr},
                       {"k", args.k},
                       {"idm_weight", oo.idm_weight},
                       {"scheduler", oo.scheduler},
                       {"random_freeze", args.random_freeze},
                       {"qe_loss", args.qe},
                       {"distribution_loss", args.distribution},
                       {"ema_decay", trainer.ema_decay()},
                       {"bn_batches", args.bn_batches},
                       {"float_epochs", args.float_epochs},
                       {"float_checkpoint", args.float_file},
                       {"test_images", args.test_limit > 0 ? args.test_limit : data.test.size()},
                       {"threads", args.threads}};
    std::printf("[oneshot] %s mode: bits %d..6, %s candidates, %d epochs x %ld images, %ld steps, k=%d, IDM %g, "
                "scheduler %s, EMA decay %.5f\n",
                args.full ? "full" : "quick", args.min_bits, args.coupled ? "coupled" : "split", args.epochs,
                static_cast<long>(args.train_limit > 0 ? args.train_limit : n_train), static_cast<long>(total), args.k,
                static_cast<double>(oo.idm_weight),
                !oo.scheduler ? "off" : args.random_freeze ? "random layers" : "on", static_cast<double>(trainer.ema_decay()));
    std::fflush(stdout);
    t0 = std::chrono::steady_clock::now();
    report.epochs = trainer.train(
        train,
        [&](nn::Index step, nn::Index all, double loss) {
          if (!tty || (step % 5 != 0 && step != all)) return;
          const double el = since(t0);
          std::printf("\r[oneshot] step %ld/%ld loss=%.4f elapsed %s ETA %s   ", static_cast<long>(step),
                      static_cast<long>(all), loss, clock_text(el).c_str(),
                      clock_text(el / static_cast<double>(step) * static_cast<double>(all - step)).c_str());
          std::fflush(stdout);
        },
        [&](const sc::EpochStats& e) {
          if (tty) std::printf("\n");
          std::printf("[oneshot] epoch %d/%d max_loss=%.4f random_loss=%.4f idm=%.5f max_train_acc=%.4f (%.0fs)\n",
                      e.epoch, args.epochs, e.max_loss, e.random_loss, e.idm, e.max_train_accuracy, since(t0));
          std::fflush(stdout);
        });
    report.timing["oneshot_seconds"] = since(t0);
    report.scheduler_events = trainer.scheduler().log();
    report.memory = net.memory();
    for (const sc::SchedulerEvent& e : report.scheduler_events) {
      std::string fr;
      for (const std::string& f : e.frozen) fr += (fr.empty() ? "" : ",") + f;
      std::printf("[scheduler] epoch %d ratio %.3f frozen %s (%.0f us)\n", e.epoch, e.ratio, fr.empty() ? "-" : fr.c_str(),
                  e.microseconds);
    }
    trainer.swap_ema();  // search and evaluate the EMA weights

    // 3. Retraining-free evaluation.
    auto eval = [&](const sc::Policy& p) {
      return sc::evaluate_policy(net, p, train, data.test, args.bn_batches, 128, args.seed, args.test_limit);
    };
    t0 = std::chrono::steady_clock::now();
    for (int b = args.min_bits; b <= 6; ++b) {
      const sc::Policy p(net.size(), search::BitPair{b, b});
      if (!feasible(net, p)) {
        std::printf("[uniform] W%dA%d: not within the final candidates\n", b, b);
        continue;
      }
      sc::UniformRecord u;
      u.level = "W" + std::to_string(b) + "A" + std::to_string(b);
      u.oneshot_accuracy = eval(p);
      report.uniform.push_back(u);
      std::printf("[uniform] %s one-shot acc=%.4f BitOps=%.2fM\n", u.level.c_str(), u.oneshot_accuracy,
                  static_cast<double>(net.bit_operations(p)) / 1e6);
    }
    const double eval_seconds = since(t0) / std::max<std::size_t>(1, report.uniform.size());
    report.timing["evaluate_policy_seconds"] = eval_seconds;
    std::fflush(stdout);

    std::vector<std::string> levels{"W3A3", "W4A4"};
    if (!args.no_search) {
      sc::BatchScorer scorer(net, heldout, args.score_images);
      t0 = std::chrono::steady_clock::now();
      const sc::Sensitivities sens = sc::measure_sensitivities(net, scorer);
      report.timing["sensitivity_seconds"] = since(t0);
      std::mt19937_64 rng(args.seed * 31 + 7);
      for (const std::string& lv : levels) {
        const int b = lv[1] - '0';
        const std::int64_t budget = sc::uniform_bit_operations(net, b, b);
        std::vector<sc::SearchResult> found;
        t0 = std::chrono::steady_clock::now();
        found.push_back(sc::greedy_search(net, scorer, budget));
        found.push_back(sc::exact_search(net, sens, budget));
        found.push_back(sc::limpq_supernet_search(net, budget));
        for (int r = 0; r < args.randoms; ++r) {
          sc::SearchResult rr;
          rr.method = "random";
          rr.policy = sc::random_feasible_policy(net, budget, rng);
          rr.bit_operations = net.bit_operations(rr.policy);
          rr.size_bits = net.size_bits(rr.policy);
          found.push_back(rr);
        }
        for (const sc::SearchResult& r : found) {
          sc::SearchRecord rec;
          rec.level = lv;
          rec.result = r;
          rec.oneshot_accuracy = eval(r.policy);
          std::printf("[search] %s %-7s one-shot acc=%.4f BitOps=%.2fM (budget %.2fM) search %.2fs (%ld forwards) policy(w/a)=[%s]\n",
                      lv.c_str(), r.method.c_str(), rec.oneshot_accuracy, static_cast<double>(r.bit_operations) / 1e6,
                      static_cast<double>(budget) / 1e6, r.seconds, static_cast<long>(r.evaluations),
                      sc::Supernet::to_string(r.policy).c_str());
          std::fflush(stdout);
          report.searches.push_back(rec);
        }
      }
      // 4. Frontier.
      if (args.frontier >= 2) {
        t0 = std::chrono::steady_clock::now();
        const std::int64_t lo = std::max(sc::detail::minimum_bit_operations(net), sc::uniform_bit_operations(net, args.min_bits, args.min_bits));
        const std::int64_t hi = sc::uniform_bit_operations(net, 6, 6);
        for (std::int64_t budget : sc::frontier_budgets(lo, hi, args.frontier)) {
          std::vector<sc::SearchResult> found{sc::exact_search(net, sens, budget), sc::limpq_supernet_search(net, budget)};
          if (args.frontier_greedy) found.push_back(sc::greedy_search(net, scorer, budget));
          for (const sc::SearchResult& r : found) {
            sc::FrontierPoint f;
            f.method = r.method;
            f.budget = budget;
            f.result = r;
            f.accuracy = eval(r.policy);
            report.frontier.push_back(f);
          }
        }
        report.timing["frontier_seconds"] = since(t0);
        std::printf("[frontier] %d budgets x %zu methods evaluated in %.1fs (BN re-estimation + test evaluation %.2fs "
                    "per policy)\n",
                    args.frontier, args.frontier_greedy ? std::size_t{3} : std::size_t{2}, since(t0), eval_seconds);
        std::fflush(stdout);
      }
    }

    // 5. Retrained baselines: the same policies with LSQ QAT from the float model, as many steps as one-shot.
    if (!args.no_retrain) {
      t0 = std::chrono::steady_clock::now();
      std::map<std::string, double> done;
      auto retrain = [&](const sc::Policy& p) {
        const std::string key = sc::Supernet::to_string(p);
        auto hit = done.find(key);
        if (hit != done.end()) return hit->second;
        nn::ModelOptions qo;
        qo.seed = args.seed;
        qo.quant.per_channel_weights = args.per_channel;  // the supernet's granularity
        auto q = nn::make_resnet(qo);
        sc::copy_matching_parameters(*float_model, *q);
        nn::set_uniform_bits(*q, 8, 8);
        nn::set_bits(*q, net.layer_bits(p));
        sc::TrainOptions to;
        to.epochs = args.epochs;
        to.train_limit = args.train_limit;
        to.batch_size = args.batch;
        to.lr = 0.01f;
        to.schedule = sc::LrSchedule::cosine;
        to.seed = args.seed;
        sc::train_supervised(*q, train, to);
        sc::reestimate_batchnorm(*q, train, args.bn_batches, 128, args.seed);
        const double acc = sc::evaluate_accuracy(*q, data.test, args.test_limit);
        done[key] = acc;
        return acc;
      };
      for (sc::UniformRecord& u : report.uniform)
        if (u.level == "W3A3" || u.level == "W4A4") {
          const int b = u.level[1] - '0';
          u.retrained_accuracy = retrain(sc::Policy(net.size(), search::BitPair{b, b}));
          std::printf("[retrain] %s uniform acc=%.4f (one-shot %.4f)\n", u.level.c_str(), u.retrained_accuracy,
                      u.oneshot_accuracy);
          std::fflush(stdout);
        }
      std::set<std::string> seen_random;
      for (sc::SearchRecord& s : report.searches) {
        if (s.result.method == "random" && seen_random.count(s.level)) continue;  // one random policy per level
        if (s.result.method == "random") seen_random.insert(s.level);
        s.retrained_accuracy = retrain(s.result.policy);
        std::printf("[retrain] %s %-7s acc=%.4f (one-shot %.4f) policy(w/a)=[%s]\n", s.level.c_str(),
                    s.result.method.c_str(), s.retrained_accuracy, s.oneshot_accuracy,
                    sc::Supernet::to_string(s.result.policy).c_str());
        std::fflush(stdout);
      }
      std::vector<double> a, b;
      std::set<std::string> used;
      for (const sc::SearchRecord& s : report.searches)
        if (s.retrained_accuracy >= 0 && used.insert(sc::Supernet::to_string(s.result.policy)).second) {
          a.push_back(s.oneshot_accuracy);
          b.push_back(s.retrained_accuracy);
        }
      for (const sc::UniformRecord& u : report.uniform)
        if (u.retrained_accuracy >= 0) {
          const int bb = u.level[1] - '0';
          if (used.insert(sc::Supernet::to_string(sc::Policy(net.size(), search::BitPair{bb, bb}))).second) {
            a.push_back(u.oneshot_accuracy);
            b.push_back(u.retrained_accuracy);
          }
        }
      if (a.size() >= 2) report.kendall_tau = sc::kendall_tau(a, b);
      report.timing["retrain_seconds"] = since(t0);
      report.timing["retrained_policies"] = done.size();
      std::printf("[retrain] %zu distinct policies, Kendall tau (one-shot vs retrained) = %.3f over %zu\n", done.size(),
                  report.kendall_tau, a.size());
    }
    report.timing["total_seconds"] = since(t_start);
    std::printf("total_seconds=%.0f\n", since(t_start));
    if (!args.json_file.empty()) {
      nlohmann::json j = sc::to_json(report, net);
      std::string cmd;
      for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
      j["command"] = cmd;
      std::ofstream f(args.json_file);
      if (!f) throw mixq::error("cannot open --json file '" + args.json_file + "'");
      f << j.dump(2) << "\n";
      std::printf("wrote %s\n", args.json_file.c_str());
    }
    return 0;
  });
}
