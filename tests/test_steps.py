import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinv import conditioning, steps
from jaxinv.models import classifiers
from jaxinv.models.generator import ConditionedGenerator

K, SHAPE, NZ = 10, (28, 28, 1), 16


def _inversion_setup(batch_size=8):
  classifier = classifiers.PaperCNN(K, channels=(4, 8), dense_width=16)
  cvars = classifier.init(jax.random.key(0), jnp.zeros((1, *SHAPE)))
  gen = ConditionedGenerator(K, SHAPE, width=4, latent_dim=NZ, embed_dim=8)
  b = conditioning.sample_batch(jax.random.key(1), 2, K, NZ, gen.mode)
  gvars = gen.init({"params": jax.random.key(2)}, b["z"], b["p"], b["y"])
  tx = optax.adam(1e-3)
  state = steps.InversionState(generator=steps.init_train_state(gvars, tx), classifier=cvars,
                               loss_weights=steps.loss_weights(1.0, 4.0, 1.0, 1.0))
  return gen, classifier, tx, state


def test_inversion_step_traces_once_and_only_trains_the_generator():
  gen, classifier, tx, state = _inversion_setup()
  traces = []
  inner = steps.make_inversion_step(gen, classifier, tx)

  def counted(state, batch, key):
    traces.append(1)  # runs only while tracing
    return inner(state, batch, key)

  step = jax.jit(counted)
  classifier_before = jax.tree.map(np.asarray, state.classifier)
  params_before = jax.tree.map(np.asarray, state.generator.params)
  for i in range(4):
    batch = conditioning.sample_batch(jax.random.key(10 + i), 8, K, NZ, gen.mode)
    state, metrics = step(state, batch, jax.random.key(3))
  assert len(traces) == 1
  assert int(state.generator.step) == 4
  for name in ("loss", "loss_kl", "loss_ce", "loss_cosine", "loss_orthogonality",
               "target_accuracy", "grad_norm"):
    assert np.isfinite(float(metrics[name])), name
  jax.tree.map(np.testing.assert_array_equal, classifier_before, jax.tree.map(np.asarray, state.classifier))
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), params_before, state.generator.params)
  assert all(jax.tree.leaves(changed))


def test_fused_train_step_traces_once_and_is_deterministic():
  gen, classifier, tx, state = _inversion_setup()
  traces = []
  inner = steps.make_inversion_train_step(steps.make_inversion_step(gen, classifier, tx),
                                          batch_size=8, num_classes=K, latent_dim=NZ, mode=gen.mode)

  def counted(state, keys):
    traces.append(1)
    return inner(state, keys)

  step = jax.jit(counted)
  keys = {"conditioning": jax.random.key(5), "dropout": jax.random.key(6)}
  s1, s2 = state, state
  for _ in range(3):
    s1, m1 = step(s1, keys)
  for _ in range(3):
    s2, m2 = step(s2, keys)
  assert len(traces) == 1
  jax.tree.map(np.testing.assert_array_equal, s1.generator.params, s2.generator.params)


def test_loss_weights_zero_out_terms():
  gen, classifier, tx, state = _inversion_setup()
  state = state.replace(loss_weights=steps.loss_weights(0.0, 1.0, 0.0, 0.0))
  batch = conditioning.sample_batch(jax.random.key(1), 8, K, NZ, gen.mode)
  _, metrics = jax.jit(steps.make_inversion_step(gen, classifier, tx))(state, batch, jax.random.key(0))
  np.testing.assert_allclose(metrics["loss"], metrics["loss_ce"], rtol=1e-6)


def test_classifier_step_learns_and_traces_once():
  model = classifiers.MLP(K, hidden=(32, 16))
  x = jax.random.uniform(jax.random.key(0), (64, *SHAPE), minval=-1, maxval=1)
  y = (jnp.arange(64) % K).astype(jnp.int32)
  tx = optax.adam(1e-2)
  state = steps.init_train_state(model.init(jax.random.key(1), x[:1]), tx)
  traces = []
  inner = steps.make_classifier_step(model, tx)

  def counted(state, batch, key):
    traces.append(1)
    return inner(state, batch, key)

  step = jax.jit(counted)
  first = None
  for _ in range(30):
    state, metrics = step(state, {"image": x, "label": y}, jax.random.key(2))
    first = first if first is not None else float(metrics["loss"])
  assert len(traces) == 1
  assert float(metrics["loss"]) < 0.5 * first
