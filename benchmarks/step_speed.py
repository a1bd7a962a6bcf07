"""Step time of jaxinv's classifier and inversion steps beside the same model, loss and
batch in PyTorch (eager and torch.compile), on whatever device JAX and PyTorch see.

    python benchmarks/step_speed.py [--batches 64 256] [--steps 10] [--models paper small light fast]
        [--no-torch] [--no-compile] [--naive] [--xla-conv] [--blocks N ...] [--host-memory hugepages|keep|default]
        [--cpu-convolutions eigen|ynnpack] [--dtypes float32 bfloat16] [--out FILE]

Generators (MNIST, 10 classes, vector_matrix conditioning, frozen paper CNN, all four losses):
  paper  width 128, transposed convolutions: 256-channel maps at 10-14 px (compute-bound)
  small  width 24, transposed convolutions (DCGAN-sized, ~1 M parameters)
  light  width 32, resize-convolutions (configs/mnist.py's generator)
  fast   width 16, resize-convolutions (configs/mnist.py:fast's generator)
`--naive` adds the paper generator with Flax's own layers (`flax.linen.ConvTranspose`, what a
plain Flax port runs, and what "auto" takes off a CPU or with `jaxinv.cpu` off) at the first batch size, and the classifier with XLA's convolution gradients
and `flax.linen.max_pool` at every batch size; `--xla-conv` adds the generators and
the classifier with XLA's own convolution gradients (`generator.conv_impl="xla"`,
`classifier.conv_impl="xla"`, the baselines of `jaxinv.cpu.fast_conv`); `--models`
with no name times the classifier alone; `--blocks` adds rows with N examples per
kernel-gradient block of the 3×3 convolutions (`fast_conv.KERNEL_GRADIENT_BATCH`, N at 28 px);
`--host-memory` sets malloc as the `jaxinv` command does (`jaxinv.cpu.host_memory`): hugepages
(the default; the benchmark restarts itself with glibc's huge-page tunables), keep (freed
memory kept for reuse), default (glibc left alone); PyTorch in the same process gets it
too. `--cpu-convolutions` picks XLA:CPU's convolution library as the `jaxinv` command
does (`jaxinv.cpu.convolutions`: Eigen unless JAXINV_CPU_CONVOLUTIONS=ynnpack; a
process-wide XLA flag, so compare the two with two runs). Each row: compile time (JAX) or first-step time
(torch.compile), median ms/step over --steps timed steps after 2 warm-ups, images/s,
FLOPs per image per step (analytic: dense and convolution layers, transposed convolutions
on their non-zero products), achieved GFLOP/s, its share of the matrix-product rate and
the ratio of images/s to PyTorch eager. The same run measures a 4096³ float32 matrix
product in JAX and in PyTorch: the machine's practical ceiling. PyTorch runs on CUDA
when it sees a GPU; float32 unless `--dtypes` adds mixed precision (JAX: the models'
compute dtype, float32 parameters and losses; PyTorch: autocast) (on a GPU both frameworks may use TF32 matrix units by
default for float32: JAX's default precision and PyTorch's cuDNN convolutions do). Needs `pip install torch`
(a benchmark extra) unless --no-torch.
"""

import argparse
import os
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxinv import config as config_lib
import jaxinv.cpu
from jaxinv import data, rng, steps
from jaxinv.cpu import convolutions as cpu_convolutions, fast_conv, host_memory
from jaxinv.models import classifiers, layers
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion

PRESETS = {"paper": dict(width=128, upsample="transpose"),
           "small": dict(width=24, upsample="transpose"),
           "light": dict(width=32, upsample="resize"),
           "fast": dict(width=16, upsample="resize")}


def median_time(fn, steps, warmup=2, block=jax.block_until_ready):
  for _ in range(warmup):
    block(fn())
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    block(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def alternating_medians(runs: dict, rounds: int, steps: int) -> dict:
  """{name: median ms/step} of step functions timed in turn `rounds` times (each time the
  median of `steps`), so a slow phase of the machine hits every form alike: the A/B
  benchmarks (few_channel_conv.py, dropout_masks.py)."""
  times = {name: [] for name in runs}
  for _ in range(rounds):
    for name, run in runs.items():
      times[name].append(median_time(run, steps))
  return {name: 1000 * statistics.median(t) for name, t in times.items()}


def add_ab_arguments(parser, models_default, models_nargs="+"):
  """The A/B benchmarks' shared flags."""
  parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--models", nargs=models_nargs, default=models_default, choices=list(PRESETS))
  parser.add_argument("--rounds", type=int, default=3, help="alternations of the two forms")


def param_count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def jax_inversion(preset, batch, naive=False, conv_impl="auto", dtype="float32"):
  """Returns (run_one_step, compile_s, flops_per_step, generator_params). naive: Flax's own
  layers (nn.ConvTranspose, nn.Conv) whatever jaxinv.cpu says; dtype: the models' compute dtype."""
  config = config_lib.default_config("mnist")
  for name, value in PRESETS[preset].items():
    config.generator[name] = value
  config.generator.conv_impl = config.classifier.conv_impl = "xla" if naive else conv_impl
  config.inversion.batch_size = batch
  info = data.info("mnist")
  compute = None if dtype == "float32" else jnp.dtype(dtype)
  generator = inversion.build_generator(config, info).clone(dtype=compute)
  tx = inversion.make_optimizer(config)
  classifier = classifier_run.build_model(config, info.num_classes, compute)
  cvars = classifier.init(jax.random.key(1), jnp.zeros((1, *info.image_shape)))
  keys = rng.named_keys(0, ["init", "conditioning", "dropout"])
  state = steps.InversionState(
      generator=inversion.init_generator_state(config, generator, tx, keys["init"]),
      classifier=dict(cvars), loss_weights=steps.loss_weights(1.0, 4.0, 1.0, 1.0),
      dropout_rate=jnp.float32(config.generator.dropout_rate))
  fn = steps.make_inversion_train_step(
      steps.make_inversion_step(generator, classifier, tx), batch_size=batch,
      num_classes=info.num_classes, latent_dim=generator.latent_dim, mode=generator.mode)
  step_keys = {"conditioning": keys["conditioning"], "dropout": keys["dropout"]}
  start = time.perf_counter()
  compiled = jax.jit(fn, donate_argnums=0).lower(state, step_keys).compile()
  compile_s = time.perf_counter() - start
  holder = [state]

  def run():
    holder[0], metrics = compiled(holder[0], step_keys)
    return metrics

  return run, compile_s, _flops(compiled), param_count(state.generator.params)


def _flax_max_pool(x):
  return nn.max_pool(x, (2, 2), strides=(2, 2))


def jax_classifier(batch, conv_impl="auto", naive=False, dtype="float32"):
  """naive: what a plain Flax port runs (XLA's convolution gradients, flax.linen.max_pool)."""
  config = config_lib.default_config("mnist")
  config.classifier.conv_impl = "xla" if naive else conv_impl
  info = data.info("mnist")
  compute = None if dtype == "float32" else jnp.dtype(dtype)
  model = classifier_run.build_model(config, info.num_classes, compute)
  variables = model.init(jax.random.key(0), jnp.zeros((1, *info.image_shape)))
  tx = classifier_run.make_optimizer(config, 1000)
  state = steps.init_train_state(variables, tx)
  generator = np.random.default_rng(0)
  batch_data = {"image": jnp.asarray(generator.uniform(-1, 1, (batch, *info.image_shape)), jnp.float32),
                "label": jnp.asarray(generator.integers(0, 10, batch), jnp.int32)}
  key = jax.random.key(0)
  start = time.perf_counter()
  try:
    if naive:  # PaperCNN looks max_pool_2x2 up when it is traced (by .lower, next)
      classifiers.max_pool_2x2 = _flax_max_pool
    compiled = jax.jit(steps.make_classifier_step(model, tx), donate_argnums=0).lower(
        state, batch_data, key).compile()
  finally:
    classifiers.max_pool_2x2 = layers.max_pool_2x2
  compile_s = time.perf_counter() - start
  holder = [state]

  def run():
    holder[0], metrics = compiled(holder[0], batch_data, key)
    return metrics

  return run, compile_s, _flops(compiled), param_count(variables["params"])


def _macs_generator(width, upsample, k=10, size=28, latent=100, embed=100):
  """Multiply-accumulates per image of the generator's forward pass, by layer kind
  (jaxinv.models.generator); transposed convolutions counted on their non-zero
  products (input pixels × taps), i.e. on the output they keep."""
  half, c2, c1 = size // 2, 2 * width, width
  project = (latent + embed) * k * k * c2 + k * embed  # + the vector embedding
  if upsample == "transpose":
    up0 = k * k * (half - k + 1) ** 2 * (c2 + 1) * c2
    up1 = half * half * 4 * 4 * c2 * c1
  else:
    up0 = half * half * 9 * (c2 + 1) * c2
    up1 = size * size * 9 * c2 * c1
  to_image = size * size * 9 * c1
  return project + up0 + up1 + to_image


def _macs_classifier(size=28, channels=(32, 64), dense=128, classes=10):
  """(first conv, the rest) multiply-accumulates per image of the paper CNN's forward pass."""
  first = size * size * 9 * channels[0]
  rest = (size // 2) ** 2 * 9 * channels[0] * channels[1]
  rest += (size // 4) ** 2 * channels[1] * dense + dense * classes
  return first, rest


def analytic_flops(kind, preset, batch):
  """FLOPs (2 per multiply-accumulate) of one training step, dense and convolution
  layers only: the inversion step runs the generator forward, its input and kernel
  gradients (3×), and the frozen classifier forward and input gradient (2×); the
  classifier step runs forward, input gradients (not of the image) and kernel
  gradients."""
  first, rest = _macs_classifier()
  if kind == "inversion":
    macs = 3 * _macs_generator(**PRESETS[preset]) + 2 * (first + rest)
  else:
    macs = 2 * first + 3 * rest
  return 2 * macs * batch


def _flops(compiled):
  # XLA:GPU's cost analysis leaves out convolutions run as cuDNN calls (measured on an
  # H100: 0.059 GFLOP/image for the paper step that XLA:CPU counts as ~2.6), so FLOP
  # columns are printed only where the count covers the whole step.
  if jax.default_backend() != "cpu":
    return float("nan")
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def jax_matmul_gflops(n=4096):
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  return 2 * n**3 / median_time(lambda: f(a), 5) / 1e9


def torch_rows(kind, preset, batch, steps_count, compile_too, dtype="float32"):
  import torch

  import torch_mirror
  device = "cuda" if torch.cuda.is_available() else "cpu"
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  autocast = None if dtype == "float32" else getattr(torch, dtype)
  results = {}
  variants = ["eager"] + (["compile"] if compile_too else [])
  for variant in variants:
    torch.manual_seed(0)
    if kind == "inversion":
      gen = torch_mirror.Generator(**PRESETS[preset])
      cls = torch_mirror.PaperCNN()
      step = torch_mirror.make_inversion_step(gen, cls, batch, device=device, dtype=autocast)
      params = torch_mirror.parameter_count(gen)
    else:
      cls = torch_mirror.PaperCNN()
      step = torch_mirror.make_classifier_step(cls, batch, device=device, dtype=autocast)
      params = torch_mirror.parameter_count(cls)
    first = float("nan")
    if variant == "compile":
      try:
        step = torch.compile(step)
        start = time.perf_counter()
        step()
        sync()
        first = time.perf_counter() - start
      except Exception as err:  # inductor needs a C++ toolchain; report, don't hide
        results[variant] = ("failed: " + str(err).splitlines()[0][:60], params)
        continue
    seconds = median_time(step, steps_count, block=lambda x: sync())
    results[variant] = (first, seconds, params)
  return results


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--models", nargs="*", default=["paper", "small", "light", "fast"], choices=list(PRESETS),
                      help="generators for the inversion rows (none: classifier rows only)")
  parser.add_argument("--no-torch", action="store_true")
  parser.add_argument("--no-compile", action="store_true")
  parser.add_argument("--naive", action="store_true")
  parser.add_argument("--blocks", type=int, nargs="*", default=[],
                      help="also time every step with N examples per kernel-gradient block (at 28 px)")
  parser.add_argument("--xla-conv", action="store_true",
                      help="also time the generators and the classifier with conv_impl='xla' "
                           "(XLA's own convolution gradients: the baseline of jaxinv.models.fast_conv)")
  parser.add_argument("--host-memory", choices=host_memory.MODES, default="hugepages",
                      help="malloc as the jaxinv command sets it with JAXINV_HOST_MEMORY "
                           "(jaxinv.cpu.host_memory; PyTorch in this process gets it too): hugepages "
                           "(restarts this benchmark with glibc's huge-page tunables), keep (freed "
                           "memory kept for reuse), default (glibc left alone)")
  parser.add_argument("--cpu-convolutions", choices=cpu_convolutions.MODES, default="eigen",
                      help="XLA:CPU's convolutions on Eigen (what the jaxinv command runs unless "
                           "JAXINV_CPU_CONVOLUTIONS=ynnpack) or on YNNPACK (jaxlib's default)")
  parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=["float32", "bfloat16", "float16"],
                      help="compute dtypes of the JAX models (config.compute_dtype) and PyTorch's autocast")
  parser.add_argument("--out", default=None, help="also write the final table to this file")
  args = parser.parse_args()
  os.environ[host_memory.ENVIRONMENT_VARIABLE] = args.host_memory  # kept across the restart
  host_memory.restart_with_huge_pages()
  kept = host_memory.keep_freed_memory() if args.host_memory == "keep" else False
  eigen = cpu_convolutions.use_eigen_convolutions() if args.cpu_convolutions == "eigen" else False
  jaxinv.cpu.enable(process_settings=False)  # the hand-made convolution forms on a CPU backend
  use_torch = not args.no_torch
  header = (f"{'step':<30} {'batch':>5} {'params':>9} {'compile s':>9} {'ms/step':>9} {'images/s':>9} "
            f"{'GFLOP/img':>9} {'GFLOP/s':>8} {'% matmul':>8} {'vs eager':>8} {'XLA GF/img':>10}")
  lines = []
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}, "
        f"host memory: {args.host_memory} (kept: {kept}, huge pages: {host_memory.huge_pages_on()}), "
        f"CPU convolutions: {args.cpu_convolutions} ({'flag added' if eigen else 'XLA_FLAGS unchanged'}), "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  ceiling = jax_matmul_gflops()
  line = f"matrix product 4096^3 float32: JAX {ceiling:.0f} GFLOP/s"
  if use_torch:
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(4096, 4096, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    seconds = median_time(lambda: a @ a, 5, block=lambda x: sync())
    line += (f", PyTorch {torch.__version__} on {device} {2 * 4096**3 / seconds / 1e9:.0f} GFLOP/s "
             f"(CPU threads {torch.get_num_threads()})")
  print(line, flush=True)

  def add(name, batch, params, compile_s, seconds, flops, eager_seconds, xla_flops=float("nan")):
    ips = batch / seconds
    gflops = f"{flops / seconds / 1e9:8.1f}" if flops == flops else f"{'':>8}"
    ratio = f"{eager_seconds / seconds:8.2f}" if eager_seconds else f"{'':>8}"
    comp = f"{compile_s:9.2f}" if compile_s == compile_s else f"{'':>9}"
    per_image = f"{flops / batch / 1e9:9.3f}" if flops == flops else f"{'':>9}"
    share = f"{100 * flops / seconds / 1e9 / ceiling:8.0f}" if flops == flops else f"{'':>8}"
    xla = f"{xla_flops / batch / 1e9:10.3f}" if xla_flops == xla_flops else ""
    lines.append(f"{name:<30} {batch:5d} {params:9d} {comp} {1000 * seconds:9.1f} {ips:9.1f} "
                 f"{per_image} {gflops} {share} {ratio} {xla}")
    print(lines[-1], flush=True)

  jobs = [("inversion", m, b) for m in args.models for b in args.batches]
  jobs += [("classifier", None, b) for b in args.batches]
  jobs = [(kind, preset, batch, dtype) for kind, preset, batch in jobs for dtype in args.dtypes]
  for kind, preset, batch, dtype in jobs:
    name = f"inversion/{preset}" if kind == "inversion" else "classifier/paper_cnn"
    name += "" if dtype == "float32" else f"/{dtype}"
    if kind == "inversion":
      run, compile_s, xla_flops, params = jax_inversion(preset, batch, dtype=dtype)
    else:
      run, compile_s, xla_flops, params = jax_classifier(batch, dtype=dtype)
    flops = analytic_flops(kind, preset, batch)
    seconds = median_time(run, args.steps)
    torch_results = (torch_rows(kind, preset, batch, args.steps, not args.no_compile, dtype)
                     if use_torch else {})
    eager = torch_results.get("eager", (None, None, None))[1]
    add(f"{name} jax", batch, params, compile_s, seconds, flops, eager, xla_flops)
    for variant, result in torch_results.items():
      if isinstance(result[0], str):
        lines.append(f"{name} torch-{variant}: {result[0]}")
        print(lines[-1], flush=True)
        continue
      first, secs, tparams = result
      add(f"{name} torch-{variant}", batch, tparams, first, secs, flops, eager)
    if dtype == "float32" and args.xla_conv and kind == "inversion":
      run, compile_s, xla_conv_flops, params = jax_inversion(preset, batch, conv_impl="xla")
      add(f"{name} jax-xla-conv", batch, params, compile_s, median_time(run, args.steps), flops, eager,
          xla_conv_flops)
    if dtype == "float32" and args.xla_conv and kind == "classifier":
      run, compile_s, xla_conv_flops, params = jax_classifier(batch, conv_impl="xla")
      add(f"{name} jax-xla-conv", batch, params, compile_s, median_time(run, args.steps), flops, eager,
          xla_conv_flops)
    for block in (args.blocks if dtype == "float32" else []):
      saved = fast_conv.KERNEL_GRADIENT_BATCH, fast_conv.KERNEL_GRADIENT_PIXELS
      fast_conv.KERNEL_GRADIENT_BATCH, fast_conv.KERNEL_GRADIENT_PIXELS = block, block * 28 * 28
      try:  # read when the step is traced, inside jax_inversion / jax_classifier
        run, compile_s, other_flops, params = (jax_inversion(preset, batch) if kind == "inversion"
                                               else jax_classifier(batch))
      finally:
        fast_conv.KERNEL_GRADIENT_BATCH, fast_conv.KERNEL_GRADIENT_PIXELS = saved
      add(f"{name} jax-block{block}", batch, params, compile_s, median_time(run, args.steps), flops, eager,
          other_flops)
    if dtype == "float32" and args.naive and kind == "classifier":
      run, compile_s, naive_flops, params = jax_classifier(batch, naive=True)
      add(f"{name} jax-flax-layers", batch, params, compile_s, median_time(run, args.steps), flops, eager,
          naive_flops)
    if dtype == "float32" and args.naive and kind == "inversion" and preset == "paper" and batch == args.batches[0]:
      run, compile_s, _, params = jax_inversion(preset, batch, naive=True)
      add(f"{name} jax-nn.ConvTranspose", batch, params, compile_s, median_time(run, 3, warmup=1), flops,
          eager)
  print("\n" + header + "\n" + "\n".join(lines))
  if args.out:
    with open(args.out, "w") as out:
      out.write(header + "\n" + "\n".join(lines) + "\n")
  print(f"ceiling: JAX matrix product {ceiling:.0f} GFLOP/s; 'compile s' for torch-compile is its "
        "first step; GFLOP/img and GFLOP/s use the analytic count (analytic_flops: dense and "
        "convolution layers, transposed convolutions on their non-zero products); 'XLA GF/img' is "
        "XLA's count of the compiled JAX program (includes work on padding zeros).")


if __name__ == "__main__":
  main()
