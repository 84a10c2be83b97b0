// Reconstruction speed (issue 18's goal): one reconstruction iteration of the largest unit of each Fashion-MNIST
// network (ResNet "stage1": two 3x3 convs 16->16 at 28x28; MobileNet "block1": expand 16->64, depthwise 3x3, project
// 64->16 at 28x28, residual), batch 32, against the same unit's float forward + backward measured in the same
// benchmark, interleaved step by step (so both see the same machine load).
//
// float step: forward, the L_rec gradient, backward (weight gradients computed, as for dL/dV).
// brecq step: soft weights (AdaRound h(V)), fake-quantized activations (kernels), forward, L_rec and its gradient,
//             backward to dL/dV and dL/dscale, the rounding regulariser with its gradient, Adam on V and the scales.
// qdrop step: the brecq step plus QDrop: the input mixed with the float input and every activation quantizer of
//             the unit keeping quantization with probability 0.5 (fresh masks each step).
// Counters: float_ms and step_ms (median CPU time of the process per step, all threads), ratio = step_ms / float_ms
// (goal <= 1.3). Threads: MIXQ_BENCH_THREADS (default 1).
#include <mixq/mixq.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace nn = mixq::nn;
namespace ptq = mixq::ptq;
using nn::Index;

namespace {

int bench_threads() {
  const char* t = std::getenv("MIXQ_BENCH_THREADS");
  return t ? std::max(1, std::atoi(t)) : 1;
}

double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

nn::Tensor random_tensor(Index n, Index c, Index h, Index w, float scale = 1.f) {
  nn::Tensor t(n, c, h, w);
  t.data.setRandom();
  t.data *= scale;
  return t;
}

// One reconstruction unit in three versions (float, BRECQ, QDrop) with its inputs and targets.
struct Unit {
  std::unique_ptr<nn::Sequential> model;
  std::unique_ptr<ptq::PtqNetwork> fp, q;
  Index u = 1;
  nn::Tensor xq, xf, target, grad, mixed;
  std::vector<float> mask;
  std::unique_ptr<nn::Adam> adam_v, adam_s;
  std::vector<nn::Parameter*> vs, scales;
  ptq::DropMask input_masks{5};

  Unit(const std::string& net, Index unit_index, Index batch) : u(unit_index) {
    nn::ModelOptions mo;
    mo.seed = 3;
    model = nn::make_model(net, mo);
    model->set_training(false);
    fp = std::make_unique<ptq::PtqNetwork>(*model, ptq::BitConfig{2, 4, 8});
    q = std::make_unique<ptq::PtqNetwork>(*model, ptq::BitConfig{2, 4, 8});
    fp->set_float();
    nn::Tensor images = random_tensor(256, 1, 28, 28, 2.f);
    ptq::calibrate_rtn(*q, images, 64);
    // inputs of the unit: the float network's output of the units before it
    nn::Tensor x = random_tensor(batch, 1, 28, 28, 2.f);
    xf = u > 0 ? fp->root().forward_range(0, u, x) : x;
    xq = u > 0 ? q->root().forward_range(0, u, x) : x;
    target = fp->root().forward_range(u, u + 1, xf);
    fp->unit(u).set_input_grad(false);
    q->unit(u).set_input_grad(false);
    for (ptq::WeightLayer* l : q->weight_layers(u, u)) {
      l->init_adaround();
      vs.push_back(&l->quantizer().v());
    }
    for (ptq::ActQuantizer* a : q->act_quantizers(u, u)) {
      a->set_learn_scale(true);
      scales.push_back(&a->scale_parameter());
    }
    adam_v = std::make_unique<nn::Adam>(vs, 1e-3f);
    adam_s = std::make_unique<nn::Adam>(scales, 4e-5f);
  }

  void loss_grad(const nn::Tensor& out) {
    grad.resize_like(out);
    grad.data = (out.data - target.data) * static_cast<float>(2.0 / static_cast<double>(out.n() * out.h() * out.w()));
  }

  void float_step() {
    const nn::Tensor& out = fp->root().forward_range(u, u + 1, xf);
    loss_grad(out);
    fp->root().backward_range(u, u + 1, grad);
  }

  void reconstruction_step(float keep) {
    for (ptq::ActQuantizer* a : q->act_quantizers(u, u)) a->set_keep_probability(keep);
    const nn::Tensor* in = &xq;
    if (keep < 1.f) {
      mask.resize(static_cast<std::size_t>(xq.size()));
      input_masks.fill(keep, xq.size(), mask.data());
      ptq::mix_by_mask(xq, xf, mask.data(), mixed);
      in = &mixed;
    }
    for (nn::Parameter* p : vs) p->zero_grad();
    for (nn::Parameter* p : scales) p->zero_grad();
    const nn::Tensor& out = q->root().forward_range(u, u + 1, *in);
    loss_grad(out);
    q->root().backward_range(u, u + 1, grad);
    for (ptq::WeightLayer* l : q->weight_layers(u, u)) l->quantizer().regularizer(10.f, 0.01f, true);
    adam_v->step();
    adam_s->step();
  }
};

void BM_ReconstructionStep(benchmark::State& state, const std::string& net, Index unit, float keep) {
  nn::set_num_threads(bench_threads());
  Unit b(net, unit, 32);
  std::vector<double> tf, tq;
  for (int i = 0; i < 3; ++i) {  // warm-up: buffers sized, caches filled
    b.float_step();
    b.reconstruction_step(keep);
  }
  for (auto _ : state) {
    double t0 = cpu_now();
    b.float_step();
    double t1 = cpu_now();
    b.reconstruction_step(keep);
    double t2 = cpu_now();
    tf.push_back(t1 - t0);
    tq.push_back(t2 - t1);
  }
  const double f = median(tf), s = median(tq);
  state.counters["float_ms"] = 1e3 * f;
  state.counters["step_ms"] = 1e3 * s;
  state.counters["ratio"] = s / f;
  state.SetItemsProcessed(state.iterations() * 32);
}

}  // namespace

BENCHMARK_CAPTURE(BM_ReconstructionStep, resnet_stage1_brecq, std::string("resnet"), 1, 1.f)
    ->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_ReconstructionStep, resnet_stage1_qdrop, std::string("resnet"), 1, 0.5f)
    ->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_ReconstructionStep, mobilenet_block1_brecq, std::string("mobilenet"), 1, 1.f)
    ->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_ReconstructionStep, mobilenet_block1_qdrop, std::string("mobilenet"), 1, 0.5f)
    ->Unit(benchmark::kMillisecond)->MinTime(2.0);

BENCHMARK_MAIN();
