"""Lookahead with a growing pull (airbench's form), as an optax transformation.

Every `period` steps the slow weights move toward the fast ones by `1 − decay(t)` and the
fast weights restart from them; `decay(t) = final_decay · (t / total_steps)³` is 0 early
(plain training) and `final_decay` at the end (a strong average over the last steps). The
finished run keeps the slow weights (`slow_params`).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class LookaheadState(NamedTuple):
  count: jax.Array  # updates so far
  slow: Any  # the slow weights, same tree as the parameters


def lookahead(period: int, total_steps: int, final_decay: float = 0.95 ** 5) -> optax.GradientTransformation:
  """Chain after the optimiser: it rewrites the updates so the fast weights jump to the
  slow ones on sync steps. Needs `params` in `update`."""
  if period < 1 or total_steps < 1 or not 0.0 <= final_decay < 1.0:
    raise ValueError(f"lookahead needs period >= 1, total_steps >= 1 and 0 <= final_decay < 1; "
                     f"got {period}, {total_steps}, {final_decay}.")

  def init(params):
    # A copy, not the parameters' own buffers: a step that donates its state would
    # otherwise donate one buffer twice.
    return LookaheadState(jnp.zeros([], jnp.int32), jax.tree.map(lambda p: jnp.array(p, copy=True), params))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("lookahead needs the parameters: call update(updates, state, params).")
    count = state.count + 1
    fast = optax.apply_updates(params, updates)
    decay = final_decay * (count.astype(jnp.float32) / total_steps) ** 3
    sync = count % period == 0
    slow = jax.tree.map(lambda s, f: jnp.where(sync, s + (1.0 - decay) * (f - s), s), state.slow, fast)
    new_fast = jax.tree.map(lambda s, f: jnp.where(sync, s, f), slow, fast)
    return jax.tree.map(lambda n, p: n - p, new_fast, params), LookaheadState(count, slow)

  return optax.GradientTransformation(init, update)


def slow_params(opt_state):
  """The slow weights of the `lookahead` state inside a chain's state (its last element)."""
  return opt_state[-1].slow
