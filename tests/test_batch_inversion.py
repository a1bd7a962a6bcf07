"""Sampling many generators in one compiled call gives each generator's own samples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import batch_inversion, sampling
from jaxinv.models.generator import ConditionedGenerator


def _generator_and_variables(seeds, width=4):
  generator = ConditionedGenerator(num_classes=10, image_shape=(28, 28, 1), width=width,
                                   dropout_rate=0.3)
  z, p, y = jnp.zeros((2, 100)), jnp.full((2, 10), 0.1), jnp.zeros((2,), jnp.int32)
  return generator, [generator.init(jax.random.key(s), z, p, y) for s in seeds]


@pytest.mark.parametrize("impl", ["vmap", "map"])
def test_each_generator_matches_sampling_it_alone(impl):
  generator, variables = _generator_and_variables([0, 1, 2])
  labels = sampling.labels_for(3, [0, 4, 9])  # 9 labels, chunks of 4 (last one padded)
  key = jax.random.key(7)
  many = batch_inversion.sample_many(generator, batch_inversion.stack(variables), labels, key,
                                     batch_size=4, impl=impl)
  assert many.shape == (3, 9, 28, 28, 1)
  for g, v in enumerate(variables):
    alone = sampling.sample(generator, v, labels, key, batch_size=4)
    np.testing.assert_allclose(many[g], alone, atol=1e-5)
  assert not np.allclose(many[0], many[1])  # different generators, different images


def test_stacking_other_architectures_is_refused():
  _, narrow = _generator_and_variables([0], width=4)
  _, wide = _generator_and_variables([0], width=8)
  with pytest.raises(ValueError, match="run_b has another architecture than run_a"):
    batch_inversion.stack(narrow + wide, names=["run_a", "run_b"])
