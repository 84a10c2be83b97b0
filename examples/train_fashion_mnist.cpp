// Trains an MLP, a small ResNet or a small MobileNetV2 on Fashion-MNIST: float training when --wbits and
// --abits are 32, LSQ quantization-aware training (from a float checkpoint given by --init) otherwise.
//
//   train_fashion_mnist --model resnet --epochs 10 --out resnet_fp32.safetensors
//   train_fashion_mnist --model resnet --epochs 5 --wbits 4 --abits 4 --init resnet_fp32.safetensors
//       --export resnet_w4a4.safetensors          (one command line)
//
// --out writes a training checkpoint (float weights and the step sizes of every bit-width, to resume from);
// --export writes the quantized model (BN folded, weights quantized with the learned step sizes and packed).
// The last line is "test_accuracy=0.XXXX epoch_seconds=S" (S: mean wall time of one training epoch).
#include <mixq/mixq.hpp>
#include <mixq/detail/cli_args.hpp>

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

namespace nn = mixq::nn;

namespace {

struct Args {
  std::string model = "resnet";
  int epochs = 10;
  int wbits = 32, abits = 32;
  std::uint64_t seed = 1;
  std::string init, out, export_file, data;
  int batch = 128;
  float lr = 0.f;  // 0: 0.1 float (one-cycle), 0.01 QAT (cosine)
  float weight_decay = 5e-4f;
  float label_smoothing = 0.f;
  int threads = 2;
  long train_limit = 0, test_limit = 0;
  bool augment = false;
  bool per_tensor = false;
};

// Parses the command line (mixq/detail/cli_args.hpp: --help, --version, strict numbers, exit 2 on bad input).
std::optional<int> parse(int argc, char** argv, Args& a) {
  namespace cli = mixq::detail::cli;
  cli::Parser p("train_fashion_mnist",
                "Trains an MLP, a small ResNet or a small MobileNetV2 on Fashion-MNIST: float training when --wbits and\n"
                "--abits are 32, LSQ quantization-aware training (from a float checkpoint given by --init) otherwise.");
  p.choice("--model", a.model, {"mlp", "resnet", "mobilenet"}, "network");
  p.option("--epochs", a.epochs, "N", "training epochs", 1, 100000);
  p.option("--wbits", a.wbits, "B", "weight bits of the searchable layers (32: float; first and last layer 8)", 2, 32);
  p.option("--abits", a.abits, "B", "activation bits (32: float)", 2, 32);
  p.option("--seed", a.seed, "S", "initialisation and shuffling seed");
  p.option("--init", a.init, "FILE", "start from this checkpoint (e.g. the float model for QAT)");
  p.option("--out", a.out, "FILE", "write a training checkpoint (float weights, every step size) at the end");
  p.option("--export", a.export_file, "FILE",
           "write the quantized model at the end: BN folded, weights quantized with the learned step sizes and "
           "packed (nn/export.hpp, docs/FORMAT.md)");
  p.option("--data", a.data, "DIR", "Fashion-MNIST folder (default: the Debian package's)");
  p.option("--batch", a.batch, "N", "batch size", 2, 1000000);
  p.option("--lr", a.lr, "LR", "peak learning rate (0: 0.1 for float training, 0.01 for QAT)", 0.0, 100.0);
  p.option("--wd", a.weight_decay, "WD", "weight decay", 0.0, 1.0);
  p.option("--label-smoothing", a.label_smoothing, "E", "label smoothing", 0.0, 0.999);
  p.option("--threads", a.threads, "T", "worker threads", 1, 256);
  p.option("--train-limit", a.train_limit, "N", "training images per epoch (0: all)", 0);
  p.option("--test-limit", a.test_limit, "N", "test images (0: all)", 0);
  p.flag("--augment", a.augment, "random crops and flips");
  p.flag("--per-tensor", a.per_tensor, "one weight step size per layer instead of per output channel");
  p.notes("examples:\n"
          "  train_fashion_mnist --model resnet --epochs 10 --out resnet_fp32.safetensors\n"
          "  train_fashion_mnist --model resnet --epochs 5 --wbits 4 --abits 4 --init resnet_fp32.safetensors \\\n"
          "      --export resnet_w4a4.safetensors\n"
          "The last line is \"test_accuracy=0.XXXX epoch_seconds=S\" (S: mean wall time of one training epoch).");
  if (auto code = p.parse(argc, argv)) return code;
  for (int b : {a.wbits, a.abits})
    if (b != 32 && (b < 2 || b > 8 || b == 7)) {
      std::cerr << "train_fashion_mnist: --wbits and --abits must be 32 or a candidate bit-width (2, 3, 4, 5, 6, 8), "
                << "got " << b << "\n" << p.usage() << "Try 'train_fashion_mnist --help'.\n";
      return 2;
    }
  return std::nullopt;
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
  Args args;
  if (auto code = parse(argc, argv, args)) return *code;
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
    const float lr = args.lr > 0 ? args.lr : (quantized ? 0.01f : 0.1f);  // --lr 0: the default
    auto params = nn::trainable_parameters(*model);
    nn::Sgd opt(params, lr, 0.9f, true, args.weight_decay);
    std::mt19937_64 rng(args.seed);
    const bool tty = isatty(STDOUT_FILENO) != 0;

    std::size_t n_params = 0;
    for (const nn::Parameter* q : params) n_params += static_cast<std::size_t>(q->value.size());
    const nn::Index n_test =
        args.test_limit > 0 ? std::min<nn::Index>(args.test_limit, data.test.size()) : data.test.size();
    std::printf("model=%s wbits=%d abits=%d trainable_tensors=%zu trainable_parameters=%zu train_images=%td "
                "test_images=%td threads=%d lr=%g%s\n",
                args.model.c_str(), args.wbits, args.abits, params.size(), n_params, n_train, n_test, args.threads,
                lr, args.init.empty() ? "" : (" init=" + args.init).c_str());
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
      std::printf("saved checkpoint %s\n", args.out.c_str());
    }
    if (!args.export_file.empty()) {
      model->set_training(false);
      nn::save_quantized_model(*model, args.export_file, {{"model", args.model}});
      const auto m = mixq::io::read_quantized_model(args.export_file);
      std::size_t bytes = 0;
      for (const auto& [name, t] : m.quantized) bytes += t.storage_bytes();
      std::printf("exported %s: %zu quantized tensors (%zu bytes of codes, scales and zero points), %zu float "
                  "tensors\n", args.export_file.c_str(), m.quantized.size(), bytes, m.floats.size());
    }
    std::printf("test_accuracy=%.4f epoch_seconds=%.2f\n", test.accuracy, train_seconds / args.epochs);
  } catch (const mixq::error& e) {  // bad input: a file, the data set, an argument value
    std::fprintf(stderr, "train_fashion_mnist: %s\n", mixq::detail::cli::printable(e.what()).c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_fashion_mnist: %s\n", mixq::detail::cli::printable(e.what()).c_str());
    return 1;
  }
  return 0;
}
