// A tour of the library's workflow in one program (the README's "The library in one page" shows its essential
// lines): calibrate and fake-quantize a weight matrix per channel, pack it into a QuantizedTensor, write and read
// safetensors, build and solve a bit-width search problem from a network's layer table, apply the policy to the
// network and export the quantized model. Runs in a few seconds; files go to --dir (default: the temp folder).
#include <mixq/mixq.hpp>
#include <mixq/detail/cli_args.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace io = mixq::io;
namespace nn = mixq::nn;
namespace search = mixq::search;

namespace {

double sqnr_db(const mixq::RowMajorArrayXXf& x, const mixq::RowMajorArrayXXf& y) {
  return 10.0 * std::log10(x.cast<double>().square().sum() / (x - y).cast<double>().square().sum());
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = std::filesystem::temp_directory_path().string();
  mixq::detail::cli::Parser parser("library_tour",
                                   "The library's workflow in one program: per-channel calibration and fake\n"
                                   "quantization, QuantizedTensor, safetensors, an exact bit-width search, a policy\n"
                                   "applied to a network and exported as a quantized model.");
  parser.option("--dir", dir, "DIR", "folder for the files it writes");
  if (auto code = parser.parse(argc, argv)) return *code;
  return mixq::detail::cli::run("library_tour", [&] {
    // 1. A weight matrix [64 output channels x 288] whose rows have spread-out scales, as a trained layer's.
    mixq::RowMajorArrayXXf w(64, 288);
    std::mt19937 rng(7);
    std::normal_distribution<float> gauss(0.f, 1.f);
    for (Eigen::Index r = 0; r < w.rows(); ++r)
      for (Eigen::Index c = 0; c < w.cols(); ++c) w(r, c) = std::exp(0.05f * static_cast<float>(r % 40)) * gauss(rng);

    // 2. Observer-calibrated per-channel quantization: 4-bit signed symmetric, one scale per row (axis 0), the
    //    MSE-optimal clipping (p = 2.4) found by MseObserver; then fake quantization through the SIMD kernels.
    const mixq::QuantSpec spec = mixq::QuantSpec::per_channel(4, /*axis=*/0);
    mixq::MseObserver observer(spec, 2.4f);
    observer.observe(w);
    mixq::PerChannelQuantizer q(spec);
    q.calibrate(observer);
    const mixq::RowMajorArrayXXf w_fq = q.forward(w);
    mixq::PerChannelQuantizer q_minmax(spec);
    q_minmax.calibrate(w);  // MinMaxObserver by default
    std::printf("[quantize] 4-bit per-channel SQNR: %.2f dB with MSE clipping, %.2f dB with min/max (kernels: %s)\n",
                sqnr_db(w, w_fq), sqnr_db(w, q_minmax.forward(w)),
                mixq::kernels::isa_name(mixq::kernels::active_isa()));

    // 3. Codes bit-packed at 4 bits: dequantize(quantize(w)) == forward(w) bit for bit.
    const mixq::QuantizedTensor t = q.quantize(w);
    const mixq::RowMajorArrayXXf back = mixq::PerChannelQuantizer::dequantize_array(t);
    std::printf("[pack] %lld weights: %zu bytes of codes + %zu scales (float32: %lld bytes); round trip %s\n",
                static_cast<long long>(t.numel()), t.packed_codes().size(), t.scales().size(),
                static_cast<long long>(t.numel() * 4), (back == w_fq).all() ? "exact" : "DIFFERS");

    // 4. safetensors: a quantized model file (codes, scales, zero points, spec) and a plain float file.
    const std::string qpath = (std::filesystem::path(dir) / "mixq_tour_layer.safetensors").string();
    io::QuantizedModel file;
    file.quantized.emplace("conv.weight", t);
    file.floats.emplace("conv.bias", io::float_tensor(Eigen::ArrayXXf::Constant(1, 64, 0.1f)));
    io::write_quantized_model(qpath, file);
    const io::QuantizedModel read = io::read_quantized_model(qpath);
    const std::string fpath = (std::filesystem::path(dir) / "mixq_tour_float.safetensors").string();
    io::write_safetensors(fpath, {{"w", io::float_tensor(w)}});
    const io::SafetensorsFile f = io::SafetensorsFile::load(fpath);
    const Eigen::Tensor<float, 2, Eigen::RowMajor> wt = f.read_tensor<2>("w");  // Eigen in ...
    const Eigen::Tensor<float, 2, Eigen::RowMajor> wt_fq = q.forward(wt);       // ... Eigen out
    std::printf("[safetensors] %s: %s; %s read back as an Eigen tensor, fake-quantized: %s\n", qpath.c_str(),
                read.quantized.at("conv.weight") == t ? "identical" : "DIFFERS", fpath.c_str(),
                std::equal(wt_fq.data(), wt_fq.data() + wt_fq.size(), w_fq.data()) ? "same bits" : "DIFFERS");

    // 5. A search problem from a network's layer table: the small ResNet for 28x28 images, first conv and
    //    classifier fixed at 8 bits. Cost of a layer at b weight bits: its weights' mean squared quantization error
    //    (HAWQ-V3's cost with a unit Hessian trace); budgets: the model size and BitOps of uniform W4A4.
    nn::ModelOptions mo;
    mo.seed = 1;
    auto model = nn::make_resnet(mo);
    const search::LayerTable table = mixq::schedule::search_layer_table(*model, 1, 28, 28);
    std::vector<std::vector<float>> weights;
    std::vector<double> traces;
    for (auto& l : nn::quant_layers(*model)) {
      if (l.layer->fixed_precision()) continue;
      const Eigen::VectorXf& v = l.layer->master_weight().value;
      weights.emplace_back(v.data(), v.data() + v.size());
      traces.push_back(1.0);
    }
    const std::vector<search::BitPair> options = search::bit_pairs({2, 3, 4, 6, 8}, {4});
    const search::BitPolicy w4a4 = search::uniform_policy(table, 4, 4);
    const search::Problem problem = search::layer_problem(
        table, search::hawq_costs(table, traces, weights, options), options,
        {search::Resource::size_bits, search::Resource::bit_operations},
        {search::model_size_bits(table, w4a4), search::total_bit_operations(table, w4a4)});
    const std::string problem_json = search::problem_to_json(problem).dump();  // mixq-search reads this
    const search::Solution solution = search::solve(problem);
    const search::BitPolicy policy = search::policy_from_solution(table, problem, solution);
    std::printf("[search] %zu layers (%zu-byte JSON problem for mixq-search): %s in %.0f us; size %lld of %lld "
                "bits, BitOps %lld of %lld\n         weight bits:",
                table.size(), problem_json.size(), search::to_string(solution.status), solution.solve_seconds * 1e6,
                static_cast<long long>(solution.use[0]), static_cast<long long>(problem.budgets[0]),
                static_cast<long long>(solution.use[1]), static_cast<long long>(problem.budgets[1]));
    for (int b : policy.weight_bits) std::printf(" %d", b);
    std::printf("\n");

    // 6. The policy applied to the network; a forward initialises the step sizes (LSQ's rule); export: BN folded,
    //    weights quantized with the step sizes and packed at each layer's bit-width.
    nn::set_bits(*model, search::layer_bit_map(table, policy));
    nn::Tensor x(16, 1, 28, 28);
    for (nn::Index i = 0; i < x.size(); ++i) x.data[i] = gauss(rng);
    model->forward(x);
    model->set_training(false);
    const std::string mpath = (std::filesystem::path(dir) / "mixq_tour_model.safetensors").string();
    nn::save_quantized_model(*model, mpath);
    const io::QuantizedModel exported = io::read_quantized_model(mpath);
    std::size_t qbytes = 0;
    for (const auto& [name, qt] : exported.quantized) qbytes += qt.storage_bytes();
    std::printf("[export] %s: %zu quantized tensors, %zu bytes (float32 weights: %lld bytes), %zu float tensors\n",
                mpath.c_str(), exported.quantized.size(), qbytes,
                static_cast<long long>(search::total_weights(table) * 4), exported.floats.size());
    return 0;
  });
}
