// Chin et al. (2020, "One weight bitwidth to rule them all") on Fashion-MNIST: weight bit-widths compared at
// equal model size. For the small ResNet and the MobileNetV2-style net, at target sizes equal to the
// original-width network's size at W1, W2, W4 and W8:
//   - uniform weight bit-widths {1, 2, 3, 4, 8}, each widened to the largest multiplier that fits the target
//     (search::align_width on the built model's layer table, channels rounded to multiples of --divisor);
//   - mixed precision at the original width under the same size budget (exact solver): LIMPQ-style (learned
//     weight step sizes S_w(b) of a joint indicator run) and Hessian (HAWQ-V3's Tr(H)/n * ||W - Q_b(W)||^2);
//   - the "zero accuracy loss" MPQ policy the paper compares against: a sweep of size budgets at the original
//     width (LIMPQ objective), the smallest policy within --zero-loss-tol points of the float reference, and
//     lower-bit uniform networks widened to its size;
//   - MobileNet only: the ablation with depthwise layers pinned at 8 bits (the rest at b, widened to fit);
//   - the float network at width 1 as the reference.
// Every arm: float pretraining at its own width (one-cycle), LSQ QAT (cosine), BN re-estimation, test
// accuracy; the same image counts for every arm. Activations stay float (A32) in every arm: a weight-only
// study, since model size counts weights. Stem conv and FC weights stay at 8 bits (counted in the size).
//
//   bitwidth_study                        # --quick: small grid and step counts, <= 10 minutes on 2 cores
//   bitwidth_study --full --json docs/results/bitwidth_full.json   # the docs' grid, 3 seeds (5 at 1-2 bits)
#include <mixq/detail/cli_args.hpp>
#include <mixq/mixq.hpp>
#include <mixq/schedule/width_study.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
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
  std::string data, json_file;
  std::vector<std::string> nets{"resnet", "mobilenet"};
  std::vector<int> targets, bits, mpq_bits{2, 3, 4, 5, 6, 8}, dw8_bits, zl_bits;
  std::vector<double> zl_sweep;
  std::vector<std::string> dw8_targets;
  double zl_tol = 0.3;
  int seeds = -1, low_bit_seeds = -1, threads = 2, hessian_samples = -1;
  std::uint64_t seed = 1;
  long float_images = -1, qat_images = -1, indicator_images = -1, indicator_batch = -1, bn_batches = -1,
       test_images = -1, divisor = 1;
  bool targets_set = false, bits_set = false, dw8_set = false, zl_set = false, zl_sweep_set = false,
       dw8_targets_set = false;
};

namespace cli = mixq::detail::cli;

[[noreturn]] void bad(const std::string& msg) { throw mixq::error(msg); }

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

std::vector<int> int_list(const std::string& s, const std::string& key, int lo, int hi) {
  std::vector<int> v;
  for (const std::string& item : split(s)) v.push_back(static_cast<int>(cli::parse_integer(key, item, lo, hi)));
  if (v.empty()) bad(key + " needs at least one value, got '" + cli::printable(s) + "'");
  return v;
}

// Parses the command line (mixq/detail/cli_args.hpp: --help, --version, strict numbers, exit 2 on bad input).
std::optional<int> parse(int argc, char** argv, Args& a) {
  cli::Parser p("bitwidth_study",
                "Chin et al.'s equal-size study on Fashion-MNIST: uniform weight bit-widths widened to the same model\n"
                "size, against binary weights and size-budget MPQ (weights quantized, activations float).");
  bool quick = false;
  p.flag("--quick", quick, "small step counts (the default; minutes)");
  p.flag("--full", a.full, "the docs' schedule (hours)");
  p.option("--json", a.json_file, "FILE", "write the results (and partial results as they arrive) here");
  p.option("--data", a.data, "DIR", "Fashion-MNIST folder (default: the Debian package's)");
  p.option_values("--nets", 1, "resnet,mobilenet", "networks", [&a](const std::vector<std::string>& v) {
    a.nets = split(v[0]);
    if (a.nets.empty()) bad("--nets needs at least one network");
    for (const std::string& n : a.nets)
      if (n != "resnet" && n != "mobilenet") bad("--nets: unknown network '" + cli::printable(n) + "'");
  });
  p.option_values("--targets", 1, "1,2,4,8", "target sizes: the width-1 network's size at these weight bit-widths",
                  [&a](const std::vector<std::string>& v) { a.targets = int_list(v[0], "--targets", 1, 8), a.targets_set = true; });
  p.option_values("--bits", 1, "1,2,3,4,8", "uniform weight bit-widths widened to each target",
                  [&a](const std::vector<std::string>& v) { a.bits = int_list(v[0], "--bits", 1, 8), a.bits_set = true; });
  p.option_values("--mpq-bits", 1, "2,3,4,5,6,8", "MPQ candidate bit-widths (2..8)",
                  [&a](const std::vector<std::string>& v) { a.mpq_bits = int_list(v[0], "--mpq-bits", 2, 8); });
  p.option_values("--dw8-bits", 1, "1,2,4", "MobileNet with depthwise layers at 8 bits, the rest at these, widened",
                  [&a](const std::vector<std::string>& v) { a.dw8_bits = int_list(v[0], "--dw8-bits", 1, 8), a.dw8_set = true; });
  p.option_values("--dw8-targets", 1, "2,4", "targets of the depthwise-8-bit arm", [&a](const std::vector<std::string>& v) {
    a.dw8_targets = split(v[0]);
    for (const std::string& t : a.dw8_targets) cli::parse_integer("--dw8-targets", t, 1, 8);
    a.dw8_targets_set = true;
  });
  p.option_values("--zero-loss-bits", 1, "1,2,3", "uniform bit-widths widened to the zero-loss policy's size",
                  [&a](const std::vector<std::string>& v) { a.zl_bits = int_list(v[0], "--zero-loss-bits", 1, 8), a.zl_set = true; });
  p.option_values("--zero-loss-sweep", 1, "3,4,5,6",
                  "average weight bits of the size budgets swept for the zero-loss MPQ policy (2..8)",
                  [&a](const std::vector<std::string>& v) {
                    a.zl_sweep.clear();
                    for (const std::string& item : split(v[0])) a.zl_sweep.push_back(cli::parse_real("--zero-loss-sweep", item, 2, 8));
                    if (a.zl_sweep.empty()) bad("--zero-loss-sweep needs at least one value");
                    a.zl_sweep_set = true;
                  });
  p.option("--zero-loss-tol", a.zl_tol, "P", "accuracy points below the float reference still counted as no loss", 0.0, 100.0);
  p.option("--seeds", a.seeds, "N", "seeds per cell", 1, 1000);
  p.option("--low-bit-seeds", a.low_bit_seeds, "N", "seeds of the 1- and 2-bit cells", 1, 1000);
  p.option("--seed", a.seed, "S", "first seed");
  p.option("--float-images", a.float_images, "N", "float training images per arm", 2);
  p.option("--qat-images", a.qat_images, "N", "QAT images per arm", 2);
  p.option("--indicator-images", a.indicator_images, "N", "LIMPQ indicator training images", 1);
  p.option("--indicator-batch", a.indicator_batch, "N", "LIMPQ indicator batch", 2);
  p.option("--hessian-samples", a.hessian_samples, "N", "Hutchinson samples of the Hessian baseline", 1, 100000);
  p.option("--divisor", a.divisor, "D", "channel divisor of the widened networks", 1, 1024);
  p.option("--bn-batches", a.bn_batches, "N", "BatchNorm re-estimation batches", 0);
  p.option("--test-images", a.test_images, "N", "test images", 1);
  p.option("--threads", a.threads, "T", "worker threads", 1, 256);
  for (const char* k : {"--seeds", "--low-bit-seeds", "--float-images", "--qat-images", "--indicator-images",
                        "--indicator-batch", "--hessian-samples", "--bn-batches", "--test-images"})
    p.set_default_text(k, "by mode");
  p.notes("defaults (--quick | --full): targets 4 | 1,2,4,8; bits 1,2,4,8 | 1,2,3,4,8; seeds 1 | 3;\n"
          "  low-bit seeds 1 | 5; float images 2560 | 300000 (5 epochs); QAT images 1920 | 120000 (2 epochs);\n"
          "  indicator images 1024 | 20000, batch 64 | 128; Hessian samples 4 | 16; zero-loss sweep 3,5 | 3,4,5,6;\n"
          "  zero-loss bits 2 | 1,2,3; dw8 bits 2 | 1,2,3,4 at targets 4 | all; BN batches 8 | 32;\n"
          "  test images 2000 | 10000; divisor 1; threads 2\n"
          "example:\n"
          "  bitwidth_study --quick --json bitwidth.json && python3 scripts/bitwidth_plot.py bitwidth.json\n");
  if (auto code = p.parse(argc, argv)) return code;
  if (quick && a.full) {
    std::cerr << "bitwidth_study: --quick and --full exclude each other\n" << p.usage() << "Try 'bitwidth_study --help'.\n";
    return 2;
  }
  const bool f = a.full;
  if (!a.targets_set) a.targets = f ? std::vector<int>{1, 2, 4, 8} : std::vector<int>{4};
  if (!a.bits_set) a.bits = f ? std::vector<int>{1, 2, 3, 4, 8} : std::vector<int>{1, 2, 4, 8};
  if (!a.dw8_set) a.dw8_bits = f ? std::vector<int>{1, 2, 3, 4} : std::vector<int>{2};
  if (!a.dw8_targets_set) {
    a.dw8_targets.clear();
    if (f)
      for (int t : a.targets) a.dw8_targets.push_back(std::to_string(t));
    else
      a.dw8_targets.push_back("4");
  }
  if (!a.zl_set) a.zl_bits = f ? std::vector<int>{1, 2, 3} : std::vector<int>{2};
  if (!a.zl_sweep_set) a.zl_sweep = f ? std::vector<double>{3, 4, 5, 6} : std::vector<double>{3, 5};
  if (a.seeds < 0) a.seeds = f ? 3 : 1;
  if (a.low_bit_seeds < 0) a.low_bit_seeds = f ? 5 : a.seeds;
  if (a.float_images < 0) a.float_images = f ? 300000 : 2560;
  if (a.qat_images < 0) a.qat_images = f ? 120000 : 1920;
  if (a.indicator_images < 0) a.indicator_images = f ? 20000 : 1024;
  if (a.indicator_batch < 0) a.indicator_batch = f ? 128 : 64;
  if (a.hessian_samples < 0) a.hessian_samples = f ? 16 : 4;
  if (a.bn_batches < 0) a.bn_batches = f ? 32 : 8;
  if (a.test_images < 0) a.test_images = f ? 10000 : 2000;
  return std::nullopt;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double kib(std::int64_t bits) { return static_cast<double>(bits) / 8192.0; }

/// Hidden widths of a network at a multiplier (what the table prints): ResNet stages, MobileNet stem..last.
std::vector<std::int64_t> widths(const std::string& net, double m, std::int64_t divisor) {
  std::vector<std::int64_t> base = net == "resnet" ? std::vector<std::int64_t>{16, 32, 64}
                                                   : std::vector<std::int64_t>{16, 24, 32, 128};
  for (auto& c : base) c = search::scale_channels(c, m, divisor);
  return base;
}

std::string policy_string(const search::LayerTable& table, const sc::LayerBits& bits) {
  std::string s;
  for (std::size_t i : sc::searchable_layers(table)) {
    auto it = bits.find(table[i].name);
    if (it == bits.end()) continue;
    if (!s.empty()) s += ' ';
    s += std::to_string(it->second.first);
  }
  return s;
}

double average_searchable_bits(const search::LayerTable& table, const sc::LayerBits& bits) {
  double s = 0, n = 0;
  for (std::size_t i : sc::searchable_layers(table)) {
    const double w = static_cast<double>(search::weight_count(table[i]));
    s += w * bits.at(table[i].name).first;
    n += w;
  }
  return n > 0 ? s / n : 0.0;
}

struct Study {
  Args args;
  mixq::io::FashionMnist data;
  sc::ArmRecipe recipe;
  nlohmann::json runs = nlohmann::json::array();
  std::chrono::steady_clock::time_point t_start = std::chrono::steady_clock::now();
  double planned_units = 0, done_units = 0;  // work in (width multiplier^2 * images) units, for the ETA

  void progress(const std::string& what, double units) {
    done_units += units;
    const double t = since(t_start);
    const double eta = done_units > 0 ? t * std::max(0.0, planned_units - done_units) / done_units : 0.0;
    std::printf("%s | elapsed %.0fs, ETA %.0fs\n", what.c_str(), t, eta);
    std::fflush(stdout);
    write(report());  // partial results after every arm
  }

  std::unique_ptr<nn::Sequential> build(const std::string& net, double m, std::uint64_t seed) const {
    nn::ModelOptions o;
    o.seed = seed;
    o.width_multiplier = m;
    o.channel_divisor = static_cast<nn::Index>(args.divisor);
    o.quant.candidate_bits = {1, 2, 3, 4, 5, 6, 8};
    return nn::make_model(net, o);
  }

  search::LayerTable table_of(nn::Module& model) const {
    return sc::search_layer_table(model, 1, data.test.rows, data.test.cols);
  }

  /// One widened arm: build at m, float pretraining, QAT at `bits`, record.
  void widened_arm(nlohmann::json rec, const std::string& net, double m, const sc::LayerBits* bits_override,
                   int weight_bits, int depthwise_bits, std::uint64_t seed) {
    const auto t0 = std::chrono::steady_clock::now();
    auto model = build(net, m, seed);
    const search::LayerTable table = table_of(*model);
    const sc::LayerBits bits =
        bits_override ? *bits_override : sc::weight_only_bits(table, weight_bits, nn::float_bits, depthwise_bits);
    const double float_acc = sc::pretrain_float(*model, data, recipe, seed);
    const double acc = sc::quantize_and_train(*model, data, bits, recipe, seed);
    rec["multiplier"] = m;
    rec["widths"] = widths(net, m, args.divisor);
    rec["size_bits"] = sc::policy_size_bits(table, bits);
    rec["weights"] = search::total_weights(table);
    rec["alpha_or_scale_bits"] = 32 * [&] {  // one float scale per output channel of every quantized weight
      std::int64_t c = 0;
      for (const search::Layer& l : table) c += l.out_channels;
      return c;
    }();
    rec["float_accuracy"] = float_acc;
    rec["accuracy"] = acc;
    rec["seconds"] = since(t0);
    rec["seed"] = seed;
    runs.push_back(rec);
    char line[256];
    std::snprintf(line, sizeof line, "[%s seed %llu] %-10s %-14s m=%.3f size=%.2f KiB float=%.4f acc=%.4f (%.0fs)",
                  net.c_str(), static_cast<unsigned long long>(seed), rec["target"].get<std::string>().c_str(),
                  rec["arm"].get<std::string>().c_str(), m, kib(rec["size_bits"].get<std::int64_t>()), float_acc, acc,
                  since(t0));
    progress(line, m * m * static_cast<double>(recipe.float_images + recipe.qat_images));
  }

  /// One arm at width 1 from the shared float model: QAT at `bits`, record.
  double width1_arm(nlohmann::json rec, const std::string& net, nn::Module& float_model, double float_acc,
                    const search::LayerTable& base, const sc::LayerBits& bits, std::uint64_t seed) {
    const auto t0 = std::chrono::steady_clock::now();
    auto model = build(net, 1.0, seed);
    sc::copy_matching_parameters(float_model, *model);
    const double acc = sc::quantize_and_train(*model, data, bits, recipe, seed);
    rec["multiplier"] = 1.0;
    rec["widths"] = widths(net, 1.0, args.divisor);
    rec["size_bits"] = sc::policy_size_bits(base, bits);
    rec["average_bits"] = average_searchable_bits(base, bits);
    rec["policy"] = policy_string(base, bits);
    rec["float_accuracy"] = float_acc;
    rec["accuracy"] = acc;
    rec["seconds"] = since(t0);
    rec["seed"] = seed;
    runs.push_back(rec);
    char line[320];
    std::snprintf(line, sizeof line, "[%s seed %llu] %-10s %-14s m=1     size=%.2f KiB acc=%.4f policy=[%s] (%.0fs)",
                  net.c_str(), static_cast<unsigned long long>(seed), rec["target"].get<std::string>().c_str(),
                  rec["arm"].get<std::string>().c_str(), kib(rec["size_bits"].get<std::int64_t>()), acc,
                  policy_string(base, bits).c_str(), since(t0));
    progress(line, static_cast<double>(recipe.qat_images));
    return acc;
  }

  int seeds_for(int bits) const { return bits <= 2 ? args.low_bit_seeds : args.seeds; }

  void plan() {  // rough work units for the ETA
    const int max_seeds = std::max(args.seeds, args.low_bit_seeds);
    const double fq = static_cast<double>(recipe.float_images + recipe.qat_images);
    for (const std::string& net : args.nets) {
      auto m1 = build(net, 1.0, 1);
      const search::LayerTable base = table_of(*m1);
      for (int s = 0; s < max_seeds; ++s) {
        const bool core = s < args.seeds;
        if (core) planned_units += fq + static_cast<double>(recipe.qat_images) * (1 + 2 * args.targets.size() +
                                                                                 args.zl_sweep.size()) +
                                   7.0 * static_cast<double>(args.indicator_images);
        for (int t : args.targets) {
          const std::int64_t target = search::size_at_bits(base, t);
          for (int b : args.bits) {
            if (s >= seeds_for(b)) continue;
            const double m = search::align_width(base, b, target, args.divisor).multiplier;
            planned_units += m * m * fq;
          }
          if (net == "mobilenet" && core)
            for (const std::string& dt : args.dw8_targets)
              if (dt == std::to_string(t))
                for (int b : args.dw8_bits) {
                  const double m = search::align_width(sc::pin_depthwise(base, 8), b, target, args.divisor).multiplier;
                  planned_units += m * m * fq;
                }
        }
        for (int b : args.zl_bits)
          if (s < seeds_for(b)) planned_units += 2.5 * fq;
      }
    }
  }

  void run_network(const std::string& net, int si) {
    const std::uint64_t seed = args.seed + static_cast<std::uint64_t>(si);
    const bool core = si < args.seeds;  // seeds beyond --seeds only run the 1- and 2-bit cells
    auto float_model = build(net, 1.0, seed);
    const search::LayerTable base = table_of(*float_model);
    double float_acc = 0, float_ref_acc = 0;
    bool have_float = false;
    auto ensure_float = [&] {
      if (have_float) return;
      const auto t0 = std::chrono::steady_clock::now();
      float_acc = sc::pretrain_float(*float_model, data, recipe, seed);
      have_float = true;
      char line[160];
      std::snprintf(line, sizeof line, "[%s seed %llu] float pretraining at width 1: acc=%.4f (%.0fs)", net.c_str(),
                    static_cast<unsigned long long>(seed), float_acc, since(t0));
      progress(line, static_cast<double>(recipe.float_images));
    };
    std::vector<std::vector<double>> limpq_cost, hessian_cost;
    if (core) {
      ensure_float();
      // Float reference: the width-1 float network through the same second phase (QAT steps at 32 bits).
      nlohmann::json rec{{"net", net}, {"target", "reference"}, {"arm", "float"}, {"kind", "float"}, {"weight_bits", 32}};
      sc::LayerBits all_float;  // stem and FC in float too: the float network
      for (const search::Layer& l : base) all_float[l.name] = {nn::float_bits, nn::float_bits};
      float_ref_acc = width1_arm(rec, net, *float_model, float_acc, base, all_float, seed);
      // LIMPQ indicators (joint training from the float weights; per-tensor weight step sizes).
      {
        const auto t0 = std::chrono::steady_clock::now();
        nn::ModelOptions io_opt;
        io_opt.seed = seed;
        io_opt.switchable_bn = true;
        io_opt.quant.per_channel_weights = false;
        io_opt.channel_divisor = static_cast<nn::Index>(args.divisor);
        auto ind_model = nn::make_model(net, io_opt);
        sc::copy_matching_parameters(*float_model, *ind_model);
        nn::Tensor x0;
        std::vector<std::int32_t> y0;
        nn::make_batch(data.train.images.data(), data.train.labels.data(), nn::epoch_order(128), 0, 128, 1,
                       data.train.rows, data.train.cols, mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std,
                       x0, y0);
        sc::initialize_step_sizes(*ind_model, x0, args.mpq_bits);
        sc::IndicatorTrainingOptions it;
        it.bit_widths = args.mpq_bits;
        it.epochs = 1;
        it.train_limit = args.indicator_images;
        it.batch_size = args.indicator_batch;
        it.seed = seed;
        sc::train_indicators(*ind_model, data.train, it);
        const search::LimpqIndicators ind =
            sc::extract_indicators(*ind_model, 1, data.test.rows, data.test.cols, args.mpq_bits);
        limpq_cost = sc::limpq_weight_costs(ind, args.mpq_bits);
        char line[160];
        std::snprintf(line, sizeof line, "[%s seed %llu] LIMPQ indicators trained (%.0fs)", net.c_str(),
                      static_cast<unsigned long long>(seed), since(t0));
        progress(line, 7.0 * static_cast<double>(args.indicator_images));
      }
      // Hessian traces of the float model on 256 training images.
      {
        nn::Tensor x;
        std::vector<std::int32_t> y;
        std::mt19937_64 rng(seed);
        auto order = nn::epoch_order(data.train.size(), &rng);
        nn::make_batch(data.train.images.data(), data.train.labels.data(), order, 0, 256, 1, data.train.rows,
                       data.train.cols, mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y);
        sc::HessianOptions ho;
        ho.samples = args.hessian_samples;
        ho.seed = seed;
        const std::vector<double> traces = sc::hutchinson_traces(*float_model, x, y, ho);
        std::vector<Eigen::VectorXf> weights;
        std::vector<nn::Index> channels;
        sc::searchable_weights(*float_model, base, weights, channels);
        hessian_cost = sc::hessian_weight_costs(traces, weights, channels, args.mpq_bits);
      }
    }

    for (int t : args.targets) {
      const std::int64_t target = search::size_at_bits(base, t);
      const std::string tl = "W" + std::to_string(t);
      for (int b : args.bits) {
        if (si >= seeds_for(b)) continue;
        const search::WidthAlignment a = search::align_width(base, b, target, args.divisor);
        nlohmann::json rec{{"net", net},          {"target", tl},      {"target_size_bits", target},
                           {"arm", "W" + std::to_string(b)}, {"kind", "uniform"}, {"weight_bits", b}};
        if (a.table.size() == base.size() && search::size_at_bits(a.table, b) == search::size_at_bits(base, b) &&
            search::total_weights(a.table) == search::total_weights(base)) {
          ensure_float();  // width 1: the shared float model
          width1_arm(rec, net, *float_model, float_acc, base, sc::weight_only_bits(base, b), seed);
        } else {
          widened_arm(rec, net, a.multiplier, nullptr, b, 0, seed);
        }
      }
      if (!core) continue;
      for (const std::string method : {"limpq", "hessian"}) {
        const sc::PolicySearch ps =
            sc::weight_only_search(base, method == std::string("limpq") ? limpq_cost : hessian_cost, args.mpq_bits, target);
        nlohmann::json rec{{"net", net},     {"target", tl},  {"target_size_bits", target},
                           {"arm", method},  {"kind", "mpq"}, {"search_status", ps.status},
                           {"search_us", ps.search_microseconds}};
        if (ps.bits.empty()) {
          rec["seed"] = seed;
          runs.push_back(rec);
          std::printf("[%s seed %llu] %-10s %-14s no policy (%s: the budget is below every layer at %d bits)\n",
                      net.c_str(), static_cast<unsigned long long>(seed), tl.c_str(), method.c_str(), ps.status.c_str(),
                      args.mpq_bits.front());
          continue;
        }
        width1_arm(rec, net, *float_model, float_acc, base, ps.bits, seed);
      }
      if (net == "mobilenet")
        for (const std::string& dt : args.dw8_targets)
          if (dt == std::to_string(t))
            for (int b : args.dw8_bits) {
              const search::WidthAlignment a = search::align_width(sc::pin_depthwise(base, 8), b, target, args.divisor);
              nlohmann::json rec{{"net", net},  {"target", tl},         {"target_size_bits", target},
                                 {"arm", "W" + std::to_string(b) + "-dw8"}, {"kind", "dw8"}, {"weight_bits", b}};
              widened_arm(rec, net, a.multiplier, nullptr, b, 8, seed);
            }
    }

    // The "zero accuracy loss" MPQ policy: the smallest swept budget within zl_tol points of the float reference.
    if (core && !args.zl_sweep.empty()) {
      std::int64_t fixed = 0, searchable = 0;
      for (const search::Layer& l : base) (l.fixed_bits ? fixed : searchable) += search::weight_count(l) * (l.fixed_bits ? l.fixed_bits : 1);
      struct Cand { std::int64_t size; double acc; };
      std::vector<Cand> cands;
      for (double avg : args.zl_sweep) {
        const std::int64_t budget = fixed + static_cast<std::int64_t>(std::llround(avg * static_cast<double>(searchable)));
        const sc::PolicySearch ps = sc::weight_only_search(base, limpq_cost, args.mpq_bits, budget);
        if (ps.bits.empty()) continue;
        char label[32];
        std::snprintf(label, sizeof label, "sweep-%.2g", avg);
        nlohmann::json rec{{"net", net},    {"target", "zero_loss_sweep"}, {"target_size_bits", budget},
                           {"arm", label}, {"kind", "zero_loss_sweep"},   {"budget_average_bits", avg}};
        const double acc = width1_arm(rec, net, *float_model, float_acc, base, ps.bits, seed);
        cands.push_back({ps.size_bits, acc});
      }
      if (!cands.empty()) {
        std::size_t pick = cands.size();
        for (std::size_t i = 0; i < cands.size(); ++i)
          if (cands[i].acc >= float_ref_acc - args.zl_tol / 100.0 && (pick == cands.size() || cands[i].size < cands[pick].size))
            pick = i;
        const bool reached = pick != cands.size();
        if (!reached) {  // none within tolerance: the most accurate one, flagged
          pick = 0;
          for (std::size_t i = 1; i < cands.size(); ++i)
            if (cands[i].acc > cands[pick].acc) pick = i;
        }
        runs.push_back({{"net", net}, {"target", "zero_loss"}, {"arm", "zero-loss MPQ"}, {"kind", "zero_loss"},
                        {"size_bits", cands[pick].size}, {"accuracy", cands[pick].acc}, {"reached", reached},
                        {"float_reference", float_ref_acc}, {"tolerance_points", args.zl_tol}, {"seed", seed},
                        {"multiplier", 1.0}});
        std::printf("[%s seed %llu] zero-loss MPQ: %.2f KiB acc=%.4f (%s within %.2f points of the float reference %.4f)\n",
                    net.c_str(), static_cast<unsigned long long>(seed), kib(cands[pick].size), cands[pick].acc,
                    reached ? "the smallest" : "none of the swept policies is", args.zl_tol, float_ref_acc);
        for (int b : args.zl_bits) {
          if (si >= seeds_for(b)) continue;
          const search::WidthAlignment a = search::align_width(base, b, cands[pick].size, args.divisor);
          nlohmann::json rec{{"net", net},  {"target", "zero_loss"}, {"target_size_bits", cands[pick].size},
                             {"arm", "W" + std::to_string(b)}, {"kind", "uniform"}, {"weight_bits", b}};
          widened_arm(rec, net, a.multiplier, nullptr, b, 0, seed);
        }
      }
    } else if (!args.zl_sweep.empty()) {
      // Extra low-bit seeds: the zero-loss comparison arms are aligned to the last core seed's policy size.
      for (int b : args.zl_bits) {
        if (si >= seeds_for(b)) continue;
        std::int64_t size = 0;
        for (const auto& r : runs)
          if (r["net"] == net && r["kind"] == "zero_loss") size = r["size_bits"].get<std::int64_t>();
        if (size == 0) continue;
        const search::WidthAlignment a = search::align_width(base, b, size, args.divisor);
        nlohmann::json rec{{"net", net},  {"target", "zero_loss"}, {"target_size_bits", size},
                           {"arm", "W" + std::to_string(b)}, {"kind", "uniform"}, {"weight_bits", b}};
        widened_arm(rec, net, a.multiplier, nullptr, b, 0, seed);
      }
    }
  }

  nlohmann::json report() const {
    nlohmann::json j;
    j["mode"] = args.full ? "full" : "quick";
    j["settings"] = {{"float_images", recipe.float_images},
                     {"qat_images", recipe.qat_images},
                     {"batch_size", recipe.batch_size},
                     {"float_lr_one_cycle", recipe.float_lr},
                     {"qat_lr_cosine", recipe.qat_lr},
                     {"bn_reestimation_batches", recipe.bn_batches},
                     {"test_images", recipe.test_images},
                     {"activation_bits", 32},
                     {"fixed_layers", "stem conv and FC weights at 8 bits, counted in the size"},
                     {"channel_divisor", args.divisor},
                     {"targets", args.targets},
                     {"bits", args.bits},
                     {"mpq_bits", args.mpq_bits},
                     {"seeds", args.seeds},
                     {"low_bit_seeds", args.low_bit_seeds},
                     {"first_seed", args.seed},
                     {"indicator_images", args.indicator_images},
                     {"indicator_batch", args.indicator_batch},
                     {"hessian_samples", args.hessian_samples},
                     {"zero_loss_sweep_average_bits", args.zl_sweep},
                     {"zero_loss_tolerance_points", args.zl_tol},
                     {"zero_loss_bits", args.zl_bits},
                     {"dw8_bits", args.dw8_bits},
                     {"dw8_targets", args.dw8_targets},
                     {"threads", args.threads}};
    j["runs"] = runs;
    j["total_seconds"] = since(t_start);
    return j;
  }

  void write(const nlohmann::json& j) const {
    if (args.json_file.empty()) return;
    std::ofstream f(args.json_file);
    if (!f) throw mixq::error("cannot open --json file '" + args.json_file + "'");
    f << j.dump(1) << "\n";
  }

  void print_table() const {
    struct Acc { std::vector<double> v; double size = 0, m = 0; };
    std::map<std::string, Acc> cells;  // "net|target|arm"
    std::vector<std::string> order;
    for (const auto& r : runs) {
      if (!r.contains("accuracy")) continue;
      const std::string k = r["net"].get<std::string>() + "|" + r["target"].get<std::string>() + "|" +
                            r["arm"].get<std::string>();
      if (!cells.count(k)) order.push_back(k);
      Acc& a = cells[k];
      a.v.push_back(r["accuracy"].get<double>());
      a.size = kib(r["size_bits"].get<std::int64_t>());
      a.m = r.value("multiplier", 1.0);
    }
    std::printf("\n%-10s %-16s %-14s %8s %10s %18s %s\n", "network", "target", "arm", "m", "size KiB", "accuracy %",
                "seeds");
    for (const std::string& k : order) {
      const Acc& a = cells.at(k);
      double mean = 0, var = 0;
      for (double x : a.v) mean += x;
      mean /= static_cast<double>(a.v.size());
      for (double x : a.v) var += (x - mean) * (x - mean);
      const double sd = a.v.size() > 1 ? std::sqrt(var / static_cast<double>(a.v.size() - 1)) : 0.0;
      const auto p1 = k.find('|'), p2 = k.rfind('|');
      std::printf("%-10s %-16s %-14s %8.3f %10.2f %10.2f +- %5.2f %zu\n", k.substr(0, p1).c_str(),
                  k.substr(p1 + 1, p2 - p1 - 1).c_str(), k.substr(p2 + 1).c_str(), a.m, a.size, 100 * mean, 100 * sd,
                  a.v.size());
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (auto code = parse(argc, argv, args)) return *code;
  try {
    Study st;
    st.args = args;
    nn::set_num_threads(args.threads);
    st.data = mixq::io::load_fashion_mnist(args.data);
    st.recipe.float_images = args.float_images;
    st.recipe.qat_images = args.qat_images;
    st.recipe.bn_batches = args.bn_batches;
    st.recipe.test_images = args.test_images;
    // One pass over float_images / qat_images: epochs beyond the training set are random subsets, epoch by epoch.
    std::printf("bitwidth_study (%s mode%s): nets", args.full ? "full" : "quick",
                args.full ? "" : ": small step counts, not the docs' schedule");
    for (const auto& n : args.nets) std::printf(" %s", n.c_str());
    std::printf("; float %ld + QAT %ld images per arm; activations float; test %ld images; %d seed(s) (%d at 1-2 bits)\n",
                args.float_images, args.qat_images, args.test_images, args.seeds, args.low_bit_seeds);
    std::fflush(stdout);
    st.plan();
    const int max_seeds = std::max(args.seeds, args.low_bit_seeds);
    for (int si = 0; si < max_seeds; ++si)
      for (const std::string& net : args.nets) {
        st.run_network(net, si);
        st.write(st.report());  // partial results as they arrive
      }
    const nlohmann::json j = st.report();
    st.print_table();
    std::printf("total_seconds=%.0f\n", j["total_seconds"].get<double>());
    st.write(j);
    if (!args.json_file.empty()) std::printf("wrote %s\n", args.json_file.c_str());
  } catch (const mixq::error& e) {  // bad input: the data set, an argument value
    std::fprintf(stderr, "bitwidth_study: %s\n", cli::printable(e.what()).c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitwidth_study: %s\n", cli::printable(e.what()).c_str());
    return 1;
  }
  return 0;
}
