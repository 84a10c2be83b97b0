// LIMPQ (Tang et al., ECCV 2022) end to end on Fashion-MNIST with the small ResNet:
//   1. float training (or --float FILE),
//   2. joint indicator training (every bit-width 2..6 per mini-batch plus one random policy, BN per bit-width),
//   3. LIMPQ search (exact solver, alpha = 2, wired points forbidden) at the BitOps of uniform W2A2, W3A3, W4A4,
//   4. baselines at the same budgets: uniform, HAWQ-style Hessian traces (Hutchinson, finite differences),
//      random importance,
//   5. LSQ QAT fine-tuning of every policy from the float checkpoint (same epochs for all), BatchNorm statistics
//      re-estimated on 32 batches of training images (--bn-batches), test accuracy.
//
//   limpq_fashion_mnist                 # --quick: subsets and short schedules, about 3 minutes on 2 cores
//   limpq_fashion_mnist --full --json limpq.json   # 3 seeds, full training set, longer schedules
//
// Prints a table and, with --json FILE, writes it (schedule/limpq_report.hpp describes the fields).
#include <mixq/mixq.hpp>
#include <mixq/nn/checkpoint.hpp>
#include <mixq/schedule.hpp>
#include <mixq/detail/cli_args.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace nn = mixq::nn;
namespace sc = mixq::schedule;
namespace search = mixq::search;

namespace {

struct Args {
  bool full = false;
  std::uint64_t seed = 1;
  int seeds = 0;  // 0: mode default (1 quick, 3 full)
  std::string data, float_file, out_indicators, json_file, save_float;
  std::string model = "resnet";
  std::vector<std::string> levels{"W2A2", "W3A3", "W4A4"};
  bool size_budget = false;
  int threads = 2;
  // Schedules (mode defaults unless given; -1 = default).
  int float_epochs = -1, indicator_epochs = -1, finetune_epochs = -1;
  long indicator_batch = -1;
  long float_limit = -1, indicator_limit = -1, finetune_limit = -1, test_limit = -1;
  long bn_batches = 32;  // BN re-estimation after each fine-tune (batches of 128 training images; 0: off)
};

// Parses the command line (mixq/detail/cli_args.hpp: --help, --version, strict numbers, exit 2 on bad input).
std::optional<Args> parse(int argc, char** argv, int& exit_code) {
  namespace cli = mixq::detail::cli;
  Args a;
  std::string levels = "W2A2,W3A3,W4A4";
  cli::Parser p("limpq_fashion_mnist",
                "LIMPQ (Tang et al., ECCV 2022) end to end on Fashion-MNIST: float training, joint indicator training,\n"
                "the exact search at the BitOps of uniform levels, LSQ fine-tuning, uniform / Hessian / random baselines.");
  p.flag("--quick", a.full, "subsets and short schedules, about 3 minutes on 2 cores (the default)", false);
  p.flag("--full", a.full, "3 seeds, full training set, longer schedules (docs/RESULTS.md)");
  p.option("--seed", a.seed, "S", "first seed");
  p.option("--seeds", a.seeds, "N", "number of seeds", 1, 100);
  p.set_default_text("--seeds", "1 with --quick, 3 with --full");
  p.option("--data", a.data, "DIR", "Fashion-MNIST folder (default: the Debian package's)");
  p.option("--float", a.float_file, "FILE", "start from this float checkpoint instead of training one");
  p.option("--save-float", a.save_float, "FILE", "write the trained float checkpoint");
  p.option("--out-indicators", a.out_indicators, "FILE", "write the learned indicators (LIMPQ's column format)");
  p.option("--json", a.json_file, "FILE", "write the report as JSON");
  p.choice("--model", a.model, {"mlp", "resnet", "mobilenet"}, "network");
  p.option("--levels", levels, "LIST", "comma-separated uniform levels whose BitOps are the budgets");
  p.flag("--size-budget", a.size_budget, "also bound the model size by the level's");
  p.option("--threads", a.threads, "T", "worker threads", 1, 256);
  p.option("--float-epochs", a.float_epochs, "N", "float training epochs", 1, 10000);
  p.set_default_text("--float-epochs", "1 with --quick, 5 with --full");
  p.option("--indicator-epochs", a.indicator_epochs, "N", "indicator training epochs", 1, 10000);
  p.set_default_text("--indicator-epochs", "1");
  p.option("--finetune-epochs", a.finetune_epochs, "N", "fine-tuning epochs per policy", 1, 10000);
  p.set_default_text("--finetune-epochs", "1");
  p.option("--indicator-batch", a.indicator_batch, "N", "indicator training batch size", 2, 100000);
  p.set_default_text("--indicator-batch", "64 with --quick, 128 with --full");
  p.option("--float-limit", a.float_limit, "N", "float training images (0: all)", 0);
  p.set_default_text("--float-limit", "20000 with --quick, all with --full");
  p.option("--indicator-limit", a.indicator_limit, "N", "indicator training images (0: all)", 0);
  p.set_default_text("--indicator-limit", "3000 with --quick, 20000 with --full");
  p.option("--finetune-limit", a.finetune_limit, "N", "fine-tuning images per policy (0: all)", 0);
  p.set_default_text("--finetune-limit", "5000 with --quick, 30000 with --full");
  p.option("--test-limit", a.test_limit, "N", "test images (0: all)", 0);
  p.set_default_text("--test-limit", "all");
  p.option("--bn-batches", a.bn_batches, "N", "BN re-estimation batches after each fine-tune (0: off)", 0);
  p.notes("Prints a table and, with --json FILE, writes it (schedule/limpq_report.hpp describes the fields).");
  if (auto code = p.parse(argc, argv)) {
    exit_code = *code;
    return std::nullopt;
  }
  a.levels.clear();
  std::stringstream ss(levels);
  std::string item;
  while (std::getline(ss, item, ',')) a.levels.push_back(item);
  auto dflt = [](auto& v, auto quick, auto full, bool is_full) {
    if (v < 0) v = is_full ? full : quick;
  };
  dflt(a.float_epochs, 1, 5, a.full);
  dflt(a.indicator_epochs, 1, 1, a.full);
  dflt(a.finetune_epochs, 1, 1, a.full);
  dflt(a.float_limit, 20000L, 0L, a.full);
  dflt(a.indicator_limit, 3000L, 20000L, a.full);
  dflt(a.indicator_batch, 64L, 128L, a.full);
  dflt(a.finetune_limit, 5000L, 30000L, a.full);
  dflt(a.test_limit, 0L, 0L, a.full);
  if (a.seeds == 0) a.seeds = a.full ? 3 : 1;
  try {
    if (a.levels.empty()) mixq::detail::fail("--levels is empty");
    for (const std::string& lv : a.levels) (void)search::parse_level(lv);
  } catch (const mixq::error& e) {
    std::cerr << "limpq_fashion_mnist: --levels: " << e.what() << "\n";
    exit_code = 2;
    return std::nullopt;
  }
  return a;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string policy_string(const search::LayerTable& table, const sc::LayerBits& bits) {
  std::string s;
  for (std::size_t i : sc::searchable_layers(table)) {
    auto it = bits.find(table[i].name);
    if (it == bits.end()) continue;
    if (!s.empty()) s += ' ';
    s += std::to_string(it->second.first) + "/" + std::to_string(it->second.second);
  }
  return s;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path);
  if (!f) throw mixq::error("cannot open --json file '" + path + "'");
  f << j.dump(2) << "\n";
}

std::string limit_text(long n) { return n > 0 ? std::to_string(n) : std::string("all"); }

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<Args> parsed = parse(argc, argv, exit_code);
  if (!parsed) return exit_code;
  const Args& args = *parsed;
  try {
    const auto t_start = std::chrono::steady_clock::now();
    nn::set_num_threads(args.threads);
    const auto data = mixq::io::load_fashion_mnist(args.data);
    const std::vector<int> bits{2, 3, 4, 5, 6};

    sc::LimpqReport report;
    report.mode = args.full ? "full" : "quick";
    report.model = args.model;
    report.settings = {{"float_epochs", args.float_epochs},
                       {"float_train_images", args.float_limit},
                       {"indicator_epochs", args.indicator_epochs},
                       {"indicator_train_images", args.indicator_limit},
                       {"indicator_batch", args.indicator_batch},
                       {"finetune_epochs", args.finetune_epochs},
                       {"finetune_train_images", args.finetune_limit},
                       {"bn_reestimation_batches", args.bn_batches},
                       {"test_images", args.test_limit > 0 ? args.test_limit : data.test.size()},
                       {"float_checkpoint", args.float_file},
                       {"size_budget", args.size_budget},
                       {"candidate_bits", bits},
                       {"alpha", 2.0},
                       {"hessian_samples", 16},
                       {"threads", args.threads}};
    std::printf("LIMPQ on Fashion-MNIST (%s mode%s): model=%s seeds=%d threads=%d\n", report.mode.c_str(),
                args.full ? "" : ": training subsets and short schedules, not the paper's full training",
                args.model.c_str(), args.seeds, args.threads);
    std::printf("  float: %d epochs on %s images; indicators: %d epochs on %s images; fine-tune: %d epochs on %s "
                "images per policy; test: %s images\n",
                args.float_epochs, limit_text(args.float_limit).c_str(), args.indicator_epochs,
                limit_text(args.indicator_limit).c_str(), args.finetune_epochs, limit_text(args.finetune_limit).c_str(),
                limit_text(args.test_limit).c_str());
    std::fflush(stdout);

    // 1. Float model (shared by every seed).
    nn::ModelOptions fo;
    fo.seed = args.seed;
    auto float_model = nn::make_model(args.model, fo);
    if (!args.float_file.empty()) {
      nn::load_checkpoint(*float_model, args.float_file);
      std::printf("[float] loaded %s\n", args.float_file.c_str());
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      sc::TrainOptions to;
      to.epochs = args.float_epochs;
      to.train_limit = args.float_limit;
      to.lr = 0.1f;
      to.schedule = sc::LrSchedule::one_cycle;
      to.seed = args.seed;
      to.on_epoch = [&](int e, double loss, double acc) {
        std::printf("[float] epoch %d/%d loss=%.4f train_acc=%.4f (%.0fs)\n", e, args.float_epochs, loss, acc, since(t0));
        std::fflush(stdout);
      };
      sc::train_supervised(*float_model, data.train, to);
      if (!args.save_float.empty()) nn::save_checkpoint(*float_model, args.save_float);
    }
    const double float_acc = sc::evaluate_accuracy(*float_model, data.test, args.test_limit);
    std::printf("[float] test_accuracy=%.4f\n", float_acc);
    std::fflush(stdout);
    const search::LayerTable table = sc::search_layer_table(*float_model, 1, data.test.rows, data.test.cols);
    report.total_weights = search::total_weights(table);
    report.total_macs = search::total_macs(table);
    std::vector<Eigen::VectorXf> weights;
    std::vector<nn::Index> channels;
    sc::searchable_weights(*float_model, table, weights, channels);

    for (const std::string& lv : args.levels) {
      const search::BitPair p = search::parse_level(lv);
      sc::LevelReport L;
      L.level = lv;
      L.weight_bits = p.weight_bits;
      L.activation_bits = p.activation_bits;
      const search::LimpqBudgets b = sc::level_budgets(table, p.weight_bits, p.activation_bits);
      L.budget_bit_operations = b.bit_operations;
      L.budget_size_bits = args.size_budget ? b.size_bits : 0;
      report.levels.push_back(L);
    }

    std::vector<double> indicator_change;
    for (int si = 0; si < args.seeds; ++si) {
      const std::uint64_t seed = args.seed + static_cast<std::uint64_t>(si);
      report.seeds.push_back(seed);
      report.float_accuracy.push_back(float_acc);

      // 2. Joint indicator training from the float weights.
      auto t0 = std::chrono::steady_clock::now();
      nn::ModelOptions io_opt;
      io_opt.seed = seed;
      io_opt.switchable_bn = true;
      io_opt.quant.per_channel_weights = false;  // one step size per layer and bit-width: the indicator
      auto ind_model = nn::make_model(args.model, io_opt);
      sc::copy_matching_parameters(*float_model, *ind_model);
      sc::IndicatorTrainingOptions it;
      it.bit_widths = bits;
      it.epochs = args.indicator_epochs;
      it.train_limit = args.indicator_limit;
      it.seed = seed;
      it.on_epoch = [&](int e, double loss) {
        std::printf("[seed %llu] indicators epoch %d/%d loss=%.4f (%.0fs)\n", static_cast<unsigned long long>(seed), e,
                    args.indicator_epochs, loss, since(t0));
        std::fflush(stdout);
      };
      it.batch_size = args.indicator_batch;
      {
        // Step sizes initialised from data (LSQ's rule) before training, to see how far training moves them.
        nn::Tensor x0;
        std::vector<std::int32_t> y0;
        nn::make_batch(data.train.images.data(), data.train.labels.data(), nn::epoch_order(128), 0, 128, 1,
                       data.train.rows, data.train.cols, mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std,
                       x0, y0);
        sc::initialize_step_sizes(*ind_model, x0, bits);
      }
      const search::LimpqIndicators ind0 = sc::extract_indicators(*ind_model, 1, data.test.rows, data.test.cols);
      sc::train_indicators(*ind_model, data.train, it);
      const search::LimpqIndicators ind = sc::extract_indicators(*ind_model, 1, data.test.rows, data.test.cols);
      report.monotone_fraction.push_back(sc::indicator_monotone_fraction(ind));
      indicator_change.push_back(sc::indicator_relative_change(ind0, ind));
      std::printf("[seed %llu] indicators moved %.1f%% (mean |S/S_init - 1|) from their LSQ initial values\n",
                  static_cast<unsigned long long>(seed), 100.0 * indicator_change.back());
      if (!args.out_indicators.empty()) {
        const std::string path = si == 0 ? args.out_indicators : args.out_indicators + "." + std::to_string(seed);
        sc::write_limpq_indicators(path, ind);
        std::printf("[seed %llu] wrote %s\n", static_cast<unsigned long long>(seed), path.c_str());
      }
      std::printf("[seed %llu] indicators (S_w 6..2 | S_a 6..2), monotone fraction %.2f:\n",
                  static_cast<unsigned long long>(seed), report.monotone_fraction.back());
      const auto idx = sc::searchable_layers(table);
      for (std::size_t l = 0; l < idx.size(); ++l) {
        std::printf("  %-22s", table[idx[l]].name.c_str());
        for (double s : ind.weight_step[l]) std::printf(" %.4f", s);
        std::printf(" |");
        for (double s : ind.activation_step[l]) std::printf(" %.4f", s);
        std::printf("\n");
      }

      // 3. Hessian traces of the float model on 256 training images.
      std::vector<double> traces;
      {
        nn::Tensor x;
        std::vector<std::int32_t> y;
        std::mt19937_64 rng(seed);
        auto order = nn::epoch_order(data.train.size(), &rng);
        nn::make_batch(data.train.images.data(), data.train.labels.data(), order, 0, 256, 1, data.train.rows,
                       data.train.cols, mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y);
        sc::HessianOptions ho;
        ho.seed = seed;
        traces = sc::hutchinson_traces(*float_model, x, y, ho);
        std::printf("[seed %llu] Hessian traces:", static_cast<unsigned long long>(seed));
        for (double t : traces) std::printf(" %.3g", t);
        std::printf(" (%.0fs)\n", since(t0));
      }

      // 4./5. Per level: search, fine-tune, evaluate.
      for (std::size_t li = 0; li < report.levels.size(); ++li) {
        sc::LevelReport& L = report.levels[li];
        const search::LimpqBudgets budgets{L.budget_bit_operations, L.budget_size_bits};
        std::map<std::string, sc::MethodRun> runs;
        sc::MethodRun uni;
        uni.search.status = "uniform";
        uni.search.bits = sc::uniform_layer_bits(table, L.weight_bits, L.activation_bits);
        {
          const search::BitPolicy u = sc::to_bit_policy(table, uni.search.bits);
          uni.search.bit_operations = search::total_bit_operations(table, u);
          uni.search.size_bits = search::model_size_bits(table, u);
        }
        runs["uniform"].search = uni.search;
        runs["limpq"].search = sc::limpq_search(table, ind, budgets);
        runs["hessian"].search = sc::hawq_search(table, traces, weights, channels, bits, budgets);
        runs["random"].search =
            sc::limpq_search(table, sc::random_indicators(ind, seed * 1000003ULL + li), budgets);
        std::map<sc::LayerBits, double> done;  // policy -> accuracy (identical policies are trained once)
        for (const std::string& m : sc::report_methods()) {
          sc::MethodRun& run = runs[m];
          if (run.search.bits.empty()) {
            std::printf("[seed %llu] %s %s: search %s, no policy\n", static_cast<unsigned long long>(seed),
                        L.level.c_str(), m.c_str(), run.search.status.c_str());
            continue;
          }
          run.same_as_uniform = m != "uniform" && run.search.bits == runs["uniform"].search.bits;
          auto hit = done.find(run.search.bits);
          if (hit != done.end()) {
            run.accuracy = hit->second;
          } else {
            const auto tf = std::chrono::steady_clock::now();
            nn::ModelOptions qo;
            qo.seed = seed;
            auto q = nn::make_model(args.model, qo);
            sc::copy_matching_parameters(*float_model, *q);
            nn::set_uniform_bits(*q, 8, 8);
            nn::set_bits(*q, run.search.bits);
            sc::TrainOptions to;
            to.epochs = args.finetune_epochs;
            to.train_limit = args.finetune_limit;
            to.lr = 0.01f;
            to.schedule = sc::LrSchedule::cosine;
            to.seed = seed;
            sc::train_supervised(*q, data.train, to);
            if (args.bn_batches > 0) sc::reestimate_batchnorm(*q, data.train, args.bn_batches, 128, seed);
            run.accuracy = sc::evaluate_accuracy(*q, data.test, args.test_limit);
            done[run.search.bits] = run.accuracy;
            std::printf("[seed %llu] %s %-7s acc=%.4f BitOps=%.2fM policy(w/a)=[%s] (%.0fs)\n",
                        static_cast<unsigned long long>(seed), L.level.c_str(), m.c_str(), run.accuracy,
                        static_cast<double>(run.search.bit_operations) / 1e6,
                        policy_string(table, run.search.bits).c_str(), since(tf));
            std::fflush(stdout);
          }
        }
        for (const std::string& m : sc::report_methods()) L.runs[m].push_back(runs[m]);
      }
      report.total_seconds = since(t_start);
      std::printf("[seed %llu] done at %.0fs\n", static_cast<unsigned long long>(seed), report.total_seconds);
      std::fflush(stdout);
      if (!args.json_file.empty()) write_json(args.json_file, sc::limpq_report_json(report));  // partial: seeds so far
    }
    report.total_seconds = since(t_start);
    report.settings["indicator_relative_change"] = indicator_change;

    // Table.
    const nlohmann::json j = sc::limpq_report_json(report);
    std::printf("\nLIMPQ on Fashion-MNIST, %s mode, model %s, %zu seed(s), float accuracy %.4f\n",
                report.mode.c_str(), report.model.c_str(), report.seeds.size(), j["float_accuracy"]["mean"].get<double>());
    std::printf("%-6s %-8s %-16s %10s %10s %8s %10s  %s\n", "level", "method", "accuracy", "BitOps(M)", "size(KiB)",
                "avg_w", "search_us", "policy w/a per searchable layer (seed 1)");
    for (std::size_t li = 0; li < report.levels.size(); ++li) {
      const auto& jl = j["levels"][li];
      for (const std::string& m : sc::report_methods()) {
        const auto& jm = jl["methods"][m];
        char acc[64];
        std::snprintf(acc, sizeof acc, "%.4f +- %.4f", jm["accuracy_mean"].get<double>(), jm["accuracy_std"].get<double>());
        std::printf("%-6s %-8s %-16s %10.2f %10.2f %8.2f %10.1f  %s%s\n", jl["level"].get<std::string>().c_str(),
                    m.c_str(), acc, jm["bit_operations"].get<double>() / 1e6, jm["size_bits"].get<double>() / 8192.0,
                    jm["average_weight_bits"].get<double>(), jm["search_us"].get<double>(),
                    policy_string(table, report.levels[li].runs.at(m)[0].search.bits).c_str(),
                    report.levels[li].runs.at(m)[0].same_as_uniform ? " (= uniform)" : "");
      }
      std::printf("%-6s budget BitOps %.2fM%s\n", jl["level"].get<std::string>().c_str(),
                  static_cast<double>(report.levels[li].budget_bit_operations) / 1e6,
                  report.levels[li].weight_bits == 2 && report.levels[li].activation_bits == 2
                      ? " (the minimum of candidates 2..6: every policy within it is uniform W2A2)"
                      : "");
    }
    std::printf("total_seconds=%.0f\n", report.total_seconds);
    if (!args.json_file.empty()) {
      write_json(args.json_file, j);
      std::printf("wrote %s\n", args.json_file.c_str());
    }
  } catch (const mixq::error& e) {  // bad input: a file, the data set, an argument value
    std::fprintf(stderr, "%s: %s\n", "limpq_fashion_mnist", mixq::detail::cli::printable(e.what()).c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", "limpq_fashion_mnist", mixq::detail::cli::printable(e.what()).c_str());
    return 1;
  }
  return 0;
}
