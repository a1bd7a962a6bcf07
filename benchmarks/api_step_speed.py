"""The public API's inversion step against the step the library composes by hand, in one
run: same generator, frozen classifier, optimizer and batch.

    python benchmarks/api_step_speed.py [--preset light] [--batch 64] [--steps 10] [--rounds 3]

"direct": `steps.make_inversion_train_step(steps.make_inversion_step(generator, module, tx))`
jitted with donation — the step `jaxinv invert` ran before the API existed. "api":
`jaxinv.make_inversion(jaxinv.from_linen(module, variables), ...).jit_step()`. The two
are timed in turn (`--rounds` alternations, each the median of `--steps` steps after 2
warm-ups) and the ratio direct/api is printed (goal ≥ 0.97: the API costs nothing).
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

import jaxinv
from jaxinv import config as config_lib
from jaxinv import data, rng, steps
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion

PRESETS = {"paper": dict(width=128, upsample="transpose"), "light": dict(width=32, upsample="resize"),
           "fast": dict(width=16, upsample="resize")}


def build(preset: str, batch: int):
  config = config_lib.default_config("mnist")
  config.generator.update(PRESETS[preset])
  config.inversion.batch_size = batch
  info = data.info("mnist")
  generator = inversion.build_generator(config, info)
  tx = inversion.make_optimizer(config)
  model = classifier_run.build_model(config, info.num_classes)
  variables = dict(model.init(jax.random.key(1), jnp.zeros((1, *info.image_shape))))
  keys = rng.named_keys(0, ["init", "conditioning", "dropout"])

  # The step composed by hand.
  direct_state = steps.InversionState(
      generator=inversion.init_generator_state(config, generator, tx, keys["init"]),
      classifier=variables, loss_weights=steps.loss_weights(1.0, 4.0, 1.0, 1.0),
      dropout_rate=jnp.float32(config.generator.dropout_rate))
  direct_fn = jax.jit(steps.make_inversion_train_step(
      steps.make_inversion_step(generator, model, tx), batch_size=batch,
      num_classes=info.num_classes, latent_dim=generator.latent_dim, mode=generator.mode),
      donate_argnums=0)
  step_keys = {"conditioning": keys["conditioning"], "dropout": keys["dropout"]}

  # The same through the public API.
  api = jaxinv.make_inversion(jaxinv.from_linen(model, variables, features="penultimate"),
                              info.image_shape, generator=generator, optimizer=tx, batch_size=batch)
  api_key = jax.random.key(0)
  api_state = api.jit_init()(api_key)
  api_fn = api.jit_step()

  holders = {"direct": [direct_state], "api": [api_state]}

  def direct():
    holders["direct"][0], metrics = direct_fn(holders["direct"][0], step_keys)
    return metrics

  def through_api():
    holders["api"][0], metrics = api_fn(holders["api"][0], api_key)
    return metrics

  return {"direct": direct, "api": through_api}


def median_ms(fn, steps_count: int) -> float:
  for _ in range(2):
    jax.block_until_ready(fn())
  times = []
  for _ in range(steps_count):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return 1000 * statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", default="light", choices=list(PRESETS))
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  runs = build(args.preset, args.batch)
  times = {name: [] for name in runs}
  for _ in range(args.rounds):
    for name, run in runs.items():
      times[name].append(median_ms(run, args.steps))
  direct, api = (statistics.median(times[name]) for name in ("direct", "api"))
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; preset {args.preset}, "
        f"batch {args.batch}, {args.rounds} rounds x {args.steps} steps")
  print(f"direct step: {direct:.1f} ms   api step: {api:.1f} ms   ratio direct/api: {direct / api:.3f}"
        f"   (per round: direct {[round(t, 1) for t in times['direct']]}, "
        f"api {[round(t, 1) for t in times['api']]})")


if __name__ == "__main__":
  main()
