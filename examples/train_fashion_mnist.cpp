// Trains an MLP, a small ResNet or a small MobileNetV2 on Fashion-MNIST: float training when --wbits and
// --abits are 32, LSQ quantization-aware training (from a float checkpoint given by --init) otherwise.
//
//   train_fashion_mnist --model resnet --epochs 10 --out resnet_fp32.safetensors
//   train_fashion_mnist --model resnet --epochs 5 --wbits 4 --abits 4 --init resnet_fp32.safetensors
//
// The last line is "test_accuracy=0.XXXX epoch_seconds=S" (S: mean wall time of one training epoch).
#include <mixq/mixq.hpp>
#include <mixq/nn/checkpoint.hpp>

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

namespace nn = mixq::nn;

namespace {

struct Args {
  std::string model = "resnet";
  int epochs = 10;
  int wbits = 32, abits = 32;
  std::uint64_t seed = 1;
  std::string init, out, data;
  int batch = 128;
  float lr = -1.f;  // default: 0.1 float (one-cycle), 0.01 QAT (cosine)
  float weight_decay = 5e-4f;
  float label_smoothing = 0.f;
  int threads = 2;
  long train_limit = 0, test_limit = 0;
  bool augment = false;
  bool per_tensor = false;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "error: %s\n"
               "usage: train_fashion_mnist [--model mlp|resnet|mobilenet] [--epochs N] [--wbits B] [--abits B]\n"
               "         [--seed S] [--init FILE] [--out FILE] [--data DIR] [--batch N] [--lr LR] [--wd WD]\n"
               "         [--label-smoothing E] [--threads T] [--train-limit N] [--test-limit N] [--augment]\n"
               "         [--per-tensor]\n",
               msg);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + k).c_str());
      return argv[++i];
    };
    if (k == "--model") a.model = next();
    else if (k == "--epochs") a.epochs = std::stoi(next());
    else if (k == "--wbits") a.wbits = std::stoi(next());
    else if (k == "--abits") a.abits = std::stoi(next());
    else if (k == "--seed") a.seed = std::stoull(next());
    else if (k == "--init") a.init = next();
    else if (k == "--out") a.out = next();
    else if (k == "--data") a.data = next();
    else if (k == "--batch") a.batch = std::stoi(next());
    else if (k == "--lr") a.lr = std::stof(next());
    else if (k == "--wd") a.weight_decay = std::stof(next());
    else if (k == "--label-smoothing") a.label_smoothing = std::stof(next());
    else if (k == "--threads") a.threads = std::stoi(next());
    else if (k == "--train-limit") a.train_limit = std::stol(next());
    else if (k == "--test-limit") a.test_limit = std::stol(next());
    else if (k == "--augment") a.augment = true;
    else if (k == "--per-tensor") a.per_tensor = true;
    else usage(("unknown argument " + k).c_str());
  }
  if (a.epochs < 1 || a.batch < 2 || a.threads < 1) usage("epochs, batch and threads must be positive");
  return a;
}

// CPU time of the process (all threads), seconds: on a shared machine it tracks the work done.
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct EvalResult {
  double loss, accuracy;
};

EvalResult evaluate(nn::Sequential& model, const mixq::io::ImageSet& set, long limit, int batch) {
  model.set_training(false);
  const nn::Index n = limit > 0 ? std::min<nn::Index>(limit, set.size()) : set.size();
  const auto order = nn::epoch_order(n);
  nn::Tensor x, grad;
  std::vector<std::int32_t> y;
  double loss = 0;
  nn::Index correct = 0;
  for (nn::Index b = 0; b < n; b += batch) {
    const nn::Index e = std::min<nn::Index>(n, b + batch);
    nn::make_batch(set.images.data(), set.labels.data(), order, b, e, 1, set.rows, set.cols,
                   mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y);
    const nn::Tensor& logits = model.forward(x);
    loss += nn::cross_entropy(logits, y, grad) * static_cast<double>(e - b);
    correct += nn::count_correct(logits, y);
  }
  model.set_training(true);
  return {loss / static_cast<double>(n), static_cast<double>(correct) / static_cast<double>(n)};
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  try {
    nn::set_num_threads(args.threads);
    const auto data = mixq::io::load_fashion_mnist(args.data);
    const bool quantized = args.wbits != nn::float_bits || args.abits != nn::float_bits;

    nn::ModelOptions mo;
    mo.seed = args.seed;
    mo.quant.per_channel_weights = !args.per_tensor;
    auto model = nn::make_model(args.model, mo);
    if (!args.init.empty()) nn::load_checkpoint(*model, args.init);
    nn::set_uniform_bits(*model, args.wbits, args.abits);

    const nn::Index n_train =
        args.train_limit > 0 ? std::min<nn::Index>(args.train_limit, data.train.size()) : data.train.size();
    const nn::Index steps_per_epoch = (n_train + args.batch - 1) / args.batch;
    const nn::Index total_steps = steps_per_epoch * args.epochs;
    const float lr = args.lr > 0 ? args.lr : (quantized ? 0.01f : 0.1f);
    auto params = nn::trainable_parameters(*model);
    nn::Sgd opt(params, lr, 0.9f, true, args.weight_decay);
    std::mt19937_64 rng(args.seed);
    const bool tty = isatty(STDOUT_FILENO) != 0;

    std::printf("model=%s wbits=%d abits=%d params=%zu train=%td test=%td threads=%d lr=%g%s\n", args.model.c_str(),
                args.wbits, args.abits, params.size(), n_train, data.test.size(), args.threads, lr,
                args.init.empty() ? "" : (" init=" + args.init).c_str());
    if (quantized) {
      // Initialise the step sizes on the first batch (LSQ's rule), as the first training forward would.
      std::printf("quantized layers:");
      for (auto& l : nn::quant_layers(*model)) std::printf(" %s(w%d,a%d)", l.name.c_str(), l.layer->w_bits(), l.layer->a_bits());
      std::printf("\n");
    }
    std::fflush(stdout);

    nn::Tensor x, grad;
    std::vector<std::int32_t> y;
    double train_seconds = 0;
    nn::Index step = 0;
    EvalResult test{0, 0};
    for (int epoch = 1; epoch <= args.epochs; ++epoch) {
      model->set_training(true);
      auto order = nn::epoch_order(data.train.size(), &rng);
      order.resize(static_cast<std::size_t>(n_train));
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_seconds();
      double loss_sum = 0;
      nn::Index correct = 0, seen = 0;
      for (nn::Index b = 0; b < n_train; b += args.batch) {
        const nn::Index e = std::min<nn::Index>(n_train, b + args.batch);
        if (e - b < 2) break;
        nn::make_batch(data.train.images.data(), data.train.labels.data(), order, b, e, 1, data.train.rows,
                       data.train.cols, mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y,
                       args.augment ? &rng : nullptr);
        opt.set_lr(quantized ? nn::cosine_lr(step, total_steps, lr) : nn::one_cycle_lr(step, total_steps, lr));
        nn::zero_grad(*model);
        const nn::Tensor& logits = model->forward(x);
        const float loss = nn::cross_entropy(logits, y, grad, args.label_smoothing);
        correct += nn::count_correct(logits, y);
        model->backward(grad);
        opt.step();
        ++step;
        loss_sum += static_cast<double>(loss) * static_cast<double>(e - b);
        seen += e - b;
        if (tty) {
          const double el = seconds_since(t0);
          const double eta = el / static_cast<double>(seen) * static_cast<double>(n_train - seen);
          std::printf("\repoch %d/%d  %5.1f%%  loss %.4f  acc %.4f  lr %.4f  %.1fs  eta %.0fs   ", epoch,
                      args.epochs, 100.0 * static_cast<double>(seen) / static_cast<double>(n_train),
                      loss_sum / static_cast<double>(seen), static_cast<double>(correct) / static_cast<double>(seen),
                      static_cast<double>(opt.lr()), el, eta);
          std::fflush(stdout);
        }
      }
      const double secs = seconds_since(t0), cpu = cpu_seconds() - c0;
      train_seconds += secs;
      test = evaluate(*model, data.test, args.test_limit, 500);
      if (tty) std::printf("\r");
      std::printf("epoch %d/%d train_loss=%.4f train_acc=%.4f test_loss=%.4f test_acc=%.4f seconds=%.1f cpu_seconds=%.1f\n",
                  epoch, args.epochs, loss_sum / static_cast<double>(seen),
                  static_cast<double>(correct) / static_cast<double>(seen), test.loss, test.accuracy, secs, cpu);
      std::fflush(stdout);
    }
    if (!args.out.empty()) {
      nn::save_checkpoint(*model, args.out);
      std::printf("saved %s\n", args.out.c_str());
    }
    std::printf("test_accuracy=%.4f epoch_seconds=%.2f\n", test.accuracy, train_seconds / args.epochs);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
