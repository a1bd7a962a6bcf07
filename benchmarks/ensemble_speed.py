"""Wall time of S generators trained in one vmapped program vs one generator alone.

    python benchmarks/ensemble_speed.py [--members 1 4 8] [--batches 256 16] [--steps 5]

MNIST-sized models (configs/mnist.py: generator width 32, paper CNN), random
classifier weights (the cost does not depend on them). For each batch size: the
plain single-generator step (baseline), then the vmapped ensemble step with S
members; compile time, median step time over --steps timed steps (after one
warm-up), the ratio to the baseline and the achieved FLOP/s (XLA's cost analysis
of the compiled step divided by the median time).
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from jaxinv.runs import options
import jaxinv.cpu
from jaxinv import config as config_lib
from jaxinv import data, ensemble, rng, steps
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion


IMPL = "auto"  # what `config.ensemble.impl` defaults to: unrolled on a CPU, vmap elsewhere


def build(config, members: int | None):
  info = data.info("mnist")
  generator = inversion.build_generator(config, info)
  tx = inversion.make_optimizer(config)
  classifier = classifier_run.build_model(config, info.num_classes)
  cvars = classifier.init(jax.random.key(1), jnp.zeros((1, *info.image_shape)))
  inv = config.inversion
  one = steps.make_inversion_train_step(
      steps.make_inversion_step(generator, classifier, tx, inv.feature_layer),
      batch_size=inv.batch_size, num_classes=info.num_classes, latent_dim=generator.latent_dim,
      mode=generator.mode)
  if members is None:
    keys = rng.named_keys(0, list(ensemble.MEMBER_KEYS))
    gen_state = inversion.init_generator_state(config, generator, tx, keys["init"])
    weights = steps.loss_weights(inv.alpha, inv.beta, inv.gamma, inv.delta)
    rate = jnp.float32(config.generator.dropout_rate)
    fn = one
  else:
    config.ensemble.seeds = tuple(range(members))
    member_list = options.members(config)
    keys = ensemble.member_keys(member_list)
    gen_state = jax.vmap(lambda k: inversion.init_generator_state(config, generator, tx, k))(keys["init"])
    weights, rate = ensemble.hyperparameters(member_list)
    fn = ensemble.make_train_step(one, members, IMPL)
  state = steps.InversionState(generator=gen_state, classifier=dict(cvars), loss_weights=weights,
                               dropout_rate=rate)
  step_keys = {"conditioning": keys["conditioning"], "dropout": keys["dropout"]}
  return jax.jit(fn, donate_argnums=0), state, step_keys


def measure(config, members, timed_steps):
  step, state, keys = build(config, members)
  start = time.perf_counter()
  compiled = step.lower(state, keys).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  # XLA:GPU's count leaves out convolutions run as cuDNN calls: no FLOP/s off CPU.
  flops = float(cost.get("flops", float("nan"))) if jax.default_backend() == "cpu" else float("nan")
  state, metrics = compiled(state, keys)  # warm-up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(timed_steps):
    start = time.perf_counter()
    state, metrics = compiled(state, keys)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  return compile_s, statistics.median(times), flops


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 8])
  parser.add_argument("--batches", type=int, nargs="+", default=[256, 16])
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--impl", choices=["auto", "vmap", "unrolled"], default="auto")
  args = parser.parse_args()
  jaxinv.cpu.enable()  # the CPU machinery the jaxinv command runs with (inert off a CPU)
  global IMPL
  IMPL = args.impl
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}  backend: {jax.default_backend()}  "
        f"ensemble impl: {ensemble.resolve_impl(IMPL)}")
  print(f"{'batch':>5} {'members':>8} {'compile s':>9} {'ms/step':>9} {'ratio':>6} {'GFLOP/step':>10} "
        f"{'GFLOP/s':>8}")
  for batch in args.batches:
    config = config_lib.default_config("mnist")
    config.inversion.batch_size = batch
    base_compile, base_time, base_flops = measure(config, None, args.steps)
    print(f"{batch:5d} {'alone':>8} {base_compile:9.2f} {1000 * base_time:9.1f} {1.0:6.2f} "
          f"{base_flops / 1e9:10.2f} {base_flops / base_time / 1e9:8.1f}")
    for members in args.members:
      compile_s, step_time, flops = measure(config,
                                            members, args.steps)
      print(f"{batch:5d} {members:8d} {compile_s:9.2f} {1000 * step_time:9.1f} "
            f"{step_time / base_time:6.2f} {flops / 1e9:10.2f} {flops / step_time / 1e9:8.1f}")


if __name__ == "__main__":
  main()
