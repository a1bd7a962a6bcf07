"""Save a trained generator to a folder and load it back, without the run that made it:
`generator.json` (the module's class and fields) beside an Orbax checkpoint of its
variables. Loading needs no config and no classifier."""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxinv import checkpoint, steps
from jaxinv.fit import generator_fingerprint
from jaxinv.inversion import Inversion, generator_variables
from jaxinv.models.generator import ConditionedGenerator

_SPEC = "generator.json"
_GENERATORS = {"ConditionedGenerator": ConditionedGenerator}


def save_generator(directory: str | os.PathLike, inversion, state) -> Path:
  """Writes the generator of `inversion` (an `Inversion` or the generator module) and its
  variables from `state` (an inversion state or `{"params", "batch_stats"}`)."""
  generator = inversion.generator if isinstance(inversion, Inversion) else inversion
  spec = generator_fingerprint(generator)
  if spec["class"] not in _GENERATORS:
    raise ValueError(f"save_generator saves jaxinv's generators ({sorted(_GENERATORS)}), not "
                     f"{spec['class']}; save other modules' variables with orbax directly.")
  variables = state if isinstance(state, dict) else generator_variables(state)
  directory = Path(directory).absolute()
  directory.mkdir(parents=True, exist_ok=True)
  with checkpoint.Checkpointer(directory / "checkpoint", kind="saved_generator",
                               fingerprint=spec, keep=1) as ckpt:
    step = jnp.zeros((), jnp.int32)
    ckpt.save(0, steps.TrainState(step=step, params=variables["params"],
                                  batch_stats=variables["batch_stats"], opt_state={}))
  # Written last: a folder with generator.json holds a complete checkpoint.
  tmp = directory / (_SPEC + ".tmp")
  tmp.write_text(json.dumps(spec, indent=1, default=list))
  os.replace(tmp, directory / _SPEC)
  return directory


def load_generator(directory: str | os.PathLike):
  """`(generator, variables)` saved by `save_generator`."""
  directory = Path(directory)
  spec_path = directory / _SPEC
  if not spec_path.is_file():
    raise FileNotFoundError(f"{directory} holds no {_SPEC}: not a folder written by "
                            "jaxinv.save_generator (or its save did not finish).")
  spec = json.loads(spec_path.read_text())
  fields = {k: v for k, v in spec.items() if k != "class"}
  fields["image_shape"] = tuple(fields["image_shape"])
  if fields.get("dtype") is not None:
    fields["dtype"] = jnp.dtype(fields["dtype"])
  generator = _GENERATORS[spec["class"]](**fields)
  k = generator.num_classes
  shapes = jax.eval_shape(lambda key: generator.init(
      {"params": key}, jnp.zeros((1, generator.latent_dim)), jnp.full((1, k), 1.0 / k),
      jnp.zeros((1,), jnp.int32), train=False), jax.random.key(0))
  target = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  with checkpoint.Checkpointer(directory / "checkpoint", kind="saved_generator",
                               fingerprint=spec, keep=1) as ckpt:
    variables = ckpt.restore_model({"params": target["params"],
                                    "batch_stats": target.get("batch_stats", {})})
  return generator, variables
