// Post-training quantization on Fashion-MNIST (issue 18, methods/PTQ.md): a float ResNet and a MobileNetV2-style
// network (trained here, or loaded from --float-dir), 1,024 fixed calibration images, and per bit setting
// (W2A4, W3A3, W4A4): RTN, AdaRound (layer-wise), BRECQ (block-wise, activation scales learned jointly), QDrop
// (keep probability 0.5), MRECG on BRECQ and on QDrop with data-dependent (DD) and data-free (DF) ModCap, and
// random merges of the same k (the control).
//
//   ptq_fashion_mnist                                   # --quick: short float training, 100 steps per unit
//   ptq_fashion_mnist --full --seed 2 --float-dir F --json docs/results/ptq_full_s2.json
//
// Per run it prints the test accuracy, the wall and CPU time, the merge groups, and the per-unit reconstruction
// losses; --json writes everything (scripts/ptq_plot.py and scripts/ptq_table.py read it).
#include <mixq/mixq.hpp>
#include <mixq/detail/cli_args.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace nn = mixq::nn;
namespace ptq = mixq::ptq;
namespace sc = mixq::schedule;
using nn::Index;

namespace {

struct Setting {
  std::string name;
  int w, a;
};

struct Args {
  bool full = false;
  std::string nets = "resnet,mobilenet";
  std::string bits = "W2A4,W3A3,W4A4";
  std::string methods = "all";
  std::uint64_t seed = 1;
  Index steps = 0;          // 0: the mode's
  Index calibration = 1024;
  Index batch = 32;
  Index k_resnet = 1, k_mobilenet = 2;
  float lr_scale = 0.f;     // 0: 20000 / steps
  double alpha_stride2 = 1.0;
  std::string differential = "absolute";
  bool fisher = false;
  int float_epochs = 0;     // 0: the mode's
  Index float_images = 0;   // 0: the mode's
  Index test_limit = -1;    // -1: the mode's
  std::string float_dir, json, data;
  int threads = 2;
};

// Calibration images of the per-unit losses (and of the data-dependent capacity).
constexpr Index kLogImages = 512;

const std::vector<std::string> kMethods{"rtn",          "adaround",     "brecq",         "qdrop",
                                        "mrecg_dd_brecq", "mrecg_df_brecq", "random_brecq", "mrecg_dd_qdrop",
                                        "mrecg_df_qdrop", "random_qdrop"};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t p = 0;
  while (p <= s.size()) {
    const std::size_t c = std::min(s.find(',', p), s.size());
    if (c > p) out.push_back(s.substr(p, c - p));
    p = c + 1;
  }
  return out;
}

std::vector<Setting> parse_settings(const std::string& list) {
  std::vector<Setting> out;
  for (const std::string& t : split(list)) {
    int w = 0, a = 0;
    char tail = 0;
    if (std::sscanf(t.c_str(), "W%dA%d%c", &w, &a, &tail) != 2 || w < ptq::kMinBits || w > ptq::kMaxBits ||
        a < ptq::kMinBits || a > ptq::kMaxBits)
      mixq::detail::fail("--bits: '", mixq::detail::cli::printable(t), "' is not WxAy with x, y in [2, 8]");
    out.push_back({t, w, a});
  }
  if (out.empty()) mixq::detail::fail("--bits: no setting given");
  return out;
}

std::vector<std::string> parse_methods(const std::string& list) {
  if (list == "all") return kMethods;
  std::vector<std::string> out;
  for (const std::string& m : split(list)) {
    bool ok = false;
    for (const std::string& k : kMethods) ok = ok || k == m;
    if (!ok) mixq::detail::fail("--methods: unknown method '", mixq::detail::cli::printable(m), "'");
    out.push_back(m);
  }
  if (out.empty()) mixq::detail::fail("--methods: no method given");
  return out;
}

std::optional<int> parse(int argc, char** argv, Args& a) {
  namespace cli = mixq::detail::cli;
  cli::Parser p("ptq_fashion_mnist",
                "Post-training quantization of a small ResNet and MobileNetV2 on Fashion-MNIST: RTN, AdaRound, BRECQ,\n"
                "QDrop and MRECG's module-capacity merging (data-dependent and data-free) with random merges as control.");
  p.flag("--quick", a.full, "short float training, 100 steps per unit, 2000 test images (the default)", false);
  p.flag("--full", a.full,
         "longer float training, 2000 (ResNet) / 800 (MobileNet) steps per unit, all 10000 test images");
  p.option("--nets", a.nets, "LIST", "networks, of resnet,mobilenet");
  p.option("--bits", a.bits, "LIST", "bit settings WxAy (first conv, FC, image and FC input stay at 8 bits)");
  p.option("--methods", a.methods, "LIST",
           "all, or of rtn,adaround,brecq,qdrop,mrecg_dd_brecq,mrecg_df_brecq,random_brecq,mrecg_dd_qdrop,"
           "mrecg_df_qdrop,random_qdrop");
  p.option("--seed", a.seed, "S", "mini-batch order, QDrop masks and random merges (the float model and the "
           "calibration set are fixed)");
  p.option("--steps", a.steps, "T", "Adam steps per reconstruction unit (0: 100 quick; full 2000 ResNet, 800 MobileNet)", 0, 10000000);
  p.option("--calibration", a.calibration, "N", "calibration images (fixed set from the training split)", 1, 60000);
  p.option("--batch", a.batch, "N", "images per reconstruction step", 1, 60000);
  p.option("--k-resnet", a.k_resnet, "K", "MRECG merges on the ResNet (of its 4 adjacent pairs)", 0, 4);
  p.option("--k-mobilenet", a.k_mobilenet, "K", "MRECG merges on the MobileNet (of its 7 adjacent pairs)", 0, 7);
  p.option("--lr-scale", a.lr_scale, "X",
           "multiplies both learning rates (V 1e-3, scales 4e-5); 0: 20000 / steps, the official 20000 steps' "
           "total movement", 0.0, 1e6);
  p.option("--alpha-stride2", a.alpha_stride2, "A", "data-free ModCap weight of stride-2 layers", 1e-6, 1e6);
  p.choice("--differential", a.differential, {"absolute", "signed"}, "ModCap differential");
  p.flag("--fisher", a.fisher, "BRECQ's Fisher weighting of the block loss (hosts BRECQ and QDrop)");
  p.option("--float-epochs", a.float_epochs, "E", "float training epochs (0: 1 quick, 4 full)", 0, 1000);
  p.option("--float-images", a.float_images, "N", "training images per float epoch (0: 20000 quick, 60000 full)", 0,
           60000);
  p.option("--test-limit", a.test_limit, "N", "test images (-1: 2000 quick, 10000 full; 0: all)", -1, 10000);
  p.option("--float-dir", a.float_dir, "DIR",
           "keep the float models here: loaded when present, trained and saved otherwise");
  p.option("--json", a.json, "FILE", "write every run (settings, accuracies, per-unit losses, times)");
  p.option("--data", a.data, "DIR", "Fashion-MNIST folder (default: the Debian package's)");
  p.option("--threads", a.threads, "T", "worker threads", 1, 256);
  p.notes("examples:\n"
          "  ptq_fashion_mnist --json quick.json\n"
          "  ptq_fashion_mnist --full --seed 2 --float-dir models --json docs/results/ptq_full_s2.json\n"
          "Learning rates are scaled by 20000 / steps by default (the official runs take 20000 steps per unit).");
  if (auto code = p.parse(argc, argv)) return code;
  try {
    parse_settings(a.bits);
    parse_methods(a.methods);
    for (const std::string& n : split(a.nets))
      if (n != "resnet" && n != "mobilenet")
        mixq::detail::fail("--nets: unknown network '", mixq::detail::cli::printable(n), "'");
    if (split(a.nets).empty()) mixq::detail::fail("--nets: no network given");
  } catch (const mixq::error& e) {
    std::cerr << "ptq_fashion_mnist: " << e.what() << "\n" << p.usage() << "Try 'ptq_fashion_mnist --help'.\n";
    return 2;
  }
  return std::nullopt;
}

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

bool file_exists(const std::string& f) {
  struct stat st {};
  return ::stat(f.c_str(), &st) == 0;
}

nlohmann::json span_json(const ptq::UnitLog& u) {
  return {{"name", u.name},           {"first_unit", u.first_unit}, {"last_unit", u.last_unit},
          {"weights", u.weights},     {"rtn_loss", u.rtn_loss},     {"final_loss", u.final_loss},
          {"train_loss", u.train_loss}, {"round_loss", u.round_loss}, {"soft_share", u.soft_share},
          {"flipped_share", u.flipped_share}, {"seconds", u.seconds},  {"cpu_seconds", u.cpu_seconds}};
}

// loss / energy of every unit (the error relative to the float output's own size).
std::vector<double> relative(const ptq::UnitErrors& e) {
  std::vector<double> r;
  for (std::size_t u = 0; u < e.loss.size(); ++u) r.push_back(e.relative(static_cast<Index>(u)));
  return r;
}

nlohmann::json oscillation_json(const std::vector<double>& losses) {
  const ptq::Oscillation o = ptq::oscillation(losses);
  return {{"sign_changes", o.sign_changes}, {"total_rise", o.total_rise}, {"total_drop", o.total_drop},
          {"max_loss", o.max_loss}};
}

struct Experiment {
  Args args;
  mixq::io::FashionMnist data;
  nn::Tensor calibration;
  Index test_limit = 0;

  // Steps per unit of `net`: --steps, else 100 (quick) or 2000 / 800 (full: about 30 CPU-minutes per network and
  // seed on this machine; MobileNet's depthwise convolutions make its steps slower).
  Index steps(const std::string& net) const {
    if (args.steps > 0) return args.steps;
    if (!args.full) return 100;
    return net == "mobilenet" ? 800 : 2000;
  }
  // Both learning rates are multiplied by this: --lr-scale, else 20000 / steps (the official runs' total movement).
  float lr_scale(const std::string& net) const {
    return args.lr_scale > 0 ? args.lr_scale : 20000.f / static_cast<float>(steps(net));
  }
  nlohmann::json nets = nlohmann::json::array();

  std::unique_ptr<nn::Sequential> float_model(const std::string& net, double& accuracy, double& seconds) {
    nn::ModelOptions mo;
    mo.seed = 1;
    auto model = nn::make_model(net, mo);
    const int epochs = args.float_epochs > 0 ? args.float_epochs : (args.full ? 4 : 1);
    const Index images = args.float_images > 0 ? args.float_images : (args.full ? 60000 : 20000);
    const std::string file = args.float_dir.empty() ? std::string()
                                                    : args.float_dir + "/ptq_" + net + "_float_e" +
                                                          std::to_string(epochs) + "_n" + std::to_string(images) +
                                                          ".safetensors";
    const auto t0 = std::chrono::steady_clock::now();
    if (!file.empty() && file_exists(file)) {
      nn::load_checkpoint(*model, file);
      std::printf("%s: float model loaded from %s\n", net.c_str(), file.c_str());
    } else {
      sc::TrainOptions to;
      to.epochs = epochs;
      to.train_limit = images;
      to.batch_size = 128;
      to.lr = 0.1f;
      to.seed = 1;
      sc::train_supervised(*model, data.train, to);
      if (!file.empty()) {
        nn::save_checkpoint(*model, file);
        std::printf("%s: float model saved to %s\n", net.c_str(), file.c_str());
      }
    }
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    model->set_training(false);
    accuracy = sc::evaluate_accuracy(*model, data.test, test_limit, 128);
    return model;
  }

  ptq::ReconstructionOptions options(const std::string& net, const std::string& host) const {
    ptq::ReconstructionOptions o;
    o.steps = steps(net);
    o.batch_size = args.batch;
    o.lambda = net == "mobilenet" ? 0.1f : 0.01f;
    o.weight_lr = 1e-3f * lr_scale(net);
    o.scale_lr = 4e-5f * lr_scale(net);
    o.seed = args.seed;
    if (host == "adaround") {
      o.granularity = ptq::Granularity::layer;
      o.learn_act_scales = false;
    } else {
      o.fisher = args.fisher;
      o.keep_probability = host == "qdrop" ? 0.5f : 1.f;
    }
    return o;
  }

  void run_net(const std::string& net) {
    double float_acc = 0, float_seconds = 0;
    auto model = float_model(net, float_acc, float_seconds);
    const Index k = net == "resnet" ? args.k_resnet : args.k_mobilenet;
    nlohmann::json jnet{{"net", net},         {"float_accuracy", float_acc}, {"float_seconds", float_seconds},
                        {"k", k},             {"steps", steps(net)},         {"lr_scale", lr_scale(net)}};
    std::printf("%s: float accuracy %.2f %% (%.0f s)\n", net.c_str(), 100 * float_acc, float_seconds);
    nlohmann::json settings = nlohmann::json::array();
    for (const Setting& st : parse_settings(args.bits)) {
      const ptq::BitConfig bits{st.w, st.a, 8};
      ptq::PtqNetwork fp(*model, bits);
      fp.set_float();
      std::vector<std::string> names;
      for (Index u = 0; u < fp.units(); ++u) names.push_back(fp.unit_name(u));
      const Index units = fp.units();
      if (k > units - 1)
        mixq::detail::fail("--k-", net, ": k must be in [0, ", units - 1, "] (the adjacent pairs), got ", k);
      // RTN first: its per-unit errors give the data-dependent capacity
      ptq::PtqNetwork rtn(*model, bits);
      ptq::calibrate_rtn(rtn, calibration);
      const ptq::UnitErrors rtn_err = ptq::unit_errors(rtn, fp, calibration, kLogImages);
      const auto dd = ptq::data_dependent_capacity(rtn_err);
      const auto df = ptq::data_free_capacity(rtn.unit_layers(), {1.0, args.alpha_stride2});
      const auto diff = args.differential == "signed" ? ptq::Differential::signed_drop : ptq::Differential::absolute;
      const ptq::UnitGroups g_dd = ptq::modcap_groups(dd, k, diff), g_df = ptq::modcap_groups(df, k, diff);
      const ptq::UnitGroups g_rand = ptq::groups_from_pairs(
          ptq::random_pairs(units, k, args.seed * 7919 + static_cast<std::uint64_t>(st.w * 10 + st.a)), units);
      nlohmann::json js{{"bits", st.name},
                        {"weight_bits", st.w},
                        {"act_bits", st.a},
                        {"units", names},
                        {"capacity_dd", dd},
                        {"capacity_df", df},
                        {"differentials_dd", ptq::capacity_differentials(dd, diff)},
                        {"differentials_df", ptq::capacity_differentials(df, diff)},
                        {"groups_dd", ptq::format_groups(g_dd, names)},
                        {"groups_df", ptq::format_groups(g_df, names)},
                        {"groups_random", ptq::format_groups(g_rand, names)}};
      std::printf("%s %s: DD merges %s | DF merges %s | random %s\n", net.c_str(), st.name.c_str(),
                  ptq::format_groups(g_dd, names).c_str(), ptq::format_groups(g_df, names).c_str(),
                  ptq::format_groups(g_rand, names).c_str());
      nlohmann::json runs = nlohmann::json::array();
      std::vector<std::pair<std::string, nlohmann::json>> done;  // (host|groups) -> run, to reuse equal runs
      for (const std::string& method : parse_methods(args.methods)) {
        nlohmann::json run{{"method", method}};
        if (method == "rtn") {
          run["accuracy"] = ptq::evaluate_accuracy(rtn, data.test, test_limit);
          run["unit_losses"] = rtn_err.loss;
          run["unit_energy"] = rtn_err.energy;
          run["oscillation"] = oscillation_json(rtn_err.loss);
          run["oscillation_relative"] = oscillation_json(relative(rtn_err));
          run["seconds"] = 0.0;
          run["groups"] = "";
        } else {
          const std::string host = method == "adaround" ? "adaround"
                                   : method.find("qdrop") != std::string::npos ? "qdrop" : "brecq";
          ptq::UnitGroups groups = ptq::single_units(units);
          if (method.rfind("mrecg_dd", 0) == 0) groups = g_dd;
          if (method.rfind("mrecg_df", 0) == 0) groups = g_df;
          if (method.rfind("random", 0) == 0) groups = g_rand;
          const std::string key = host + "|" + ptq::format_groups(groups, names);
          run["host"] = host;
          run["groups"] = host == "adaround" ? std::string() : ptq::format_groups(groups, names);
          const nlohmann::json* same = nullptr;
          for (const auto& [kk, r] : done)
            if (kk == key) same = &r;
          if (same) {  // the same host and groups: the same run (seeded), not repeated
            for (const char* f : {"accuracy", "unit_losses", "unit_energy", "oscillation", "oscillation_relative",
                                  "spans", "seconds", "cpu_seconds", "steps"})
              run[f] = (*same)[f];
            run["same_as"] = (*same)["method"];
          } else {
            ptq::PtqNetwork q(*model, bits);
            ptq::calibrate_rtn(q, calibration);
            const ptq::ReconstructionReport rep = ptq::reconstruct(q, fp, calibration, groups, options(net, host));
            const ptq::UnitErrors err = ptq::unit_errors(q, fp, calibration, kLogImages);
            run["accuracy"] = ptq::evaluate_accuracy(q, data.test, test_limit);
            run["unit_losses"] = err.loss;
            run["unit_energy"] = err.energy;
            run["oscillation"] = oscillation_json(err.loss);
            run["oscillation_relative"] = oscillation_json(relative(err));
            nlohmann::json spans = nlohmann::json::array();
            for (const auto& u : rep.units) spans.push_back(span_json(u));
            run["spans"] = spans;
            run["seconds"] = rep.seconds;
            run["cpu_seconds"] = rep.cpu_seconds;
            run["steps"] = rep.steps;
            done.emplace_back(key, run);
          }
        }
        std::printf("  %-15s %6.2f %%  %6.1f s  %s\n", method.c_str(), 100 * run["accuracy"].get<double>(),
                    run["seconds"].get<double>(),
                    run.contains("same_as") ? ("(= " + run["same_as"].get<std::string>() + ")").c_str()
                                            : run["groups"].get<std::string>().c_str());
        std::fflush(stdout);
        runs.push_back(run);
      }
      js["runs"] = runs;
      settings.push_back(js);
    }
    jnet["settings"] = settings;
    nets.push_back(jnet);
  }
};

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (auto code = parse(argc, argv, args)) return *code;
  return mixq::detail::cli::run("ptq_fashion_mnist", [&] {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    nn::set_num_threads(args.threads);
    Experiment ex;
    ex.args = args;
    ex.test_limit = args.test_limit >= 0 ? args.test_limit : (args.full ? 10000 : 2000);
    if (args.batch > args.calibration)
      mixq::detail::fail("--batch ", args.batch, " is larger than the calibration set (--calibration ",
                         args.calibration, ")");
    ex.data = mixq::io::load_fashion_mnist(args.data);
    ex.calibration = ptq::image_tensor(
        ex.data.train, ptq::calibration_indices(ex.data.train.size(), args.calibration, 2023));
    std::printf("ptq_fashion_mnist (%s): steps per unit %td (ResNet) / %td (MobileNet), lr scale 20000 / steps "
                "unless --lr-scale, batch %td, %td calibration images, test images %td, seed %llu, threads %d\n",
                args.full ? "full" : "quick", ex.steps("resnet"), ex.steps("mobilenet"), args.batch, args.calibration,
                ex.test_limit > 0 ? ex.test_limit : ex.data.test.size(), static_cast<unsigned long long>(args.seed),
                args.threads);
    for (const std::string& net : split(args.nets)) ex.run_net(net);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds() - c0;
    if (!args.json.empty()) {
      nlohmann::json j{{"program", "ptq_fashion_mnist"},
                       {"mode", args.full ? "full" : "quick"},
                       {"seed", args.seed},
                       {"batch", args.batch},
                       {"calibration_images", args.calibration},
                       {"test_images", ex.test_limit > 0 ? ex.test_limit : ex.data.test.size()},
                       {"differential", args.differential},
                       {"alpha_stride2", args.alpha_stride2},
                       {"fisher", args.fisher},
                       {"threads", args.threads},
                       {"wall_seconds", wall},
                       {"cpu_seconds", cpu},
                       {"nets", ex.nets}};
      std::ofstream f(args.json);
      if (!f) mixq::detail::fail("--json: cannot open '", args.json, "'");
      f << j.dump(1) << "\n";
      std::printf("wrote %s\n", args.json.c_str());
    }
    std::printf("total wall %.0f s, cpu %.0f s\n", wall, cpu);
    return 0;
  });
}
