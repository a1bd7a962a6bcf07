"""One seed → named keys. A name maps to the same key whatever other names exist."""

import zlib

import jax


def named_keys(seed: int, names) -> dict:
  root = jax.random.key(seed)
  return {name: jax.random.fold_in(root, zlib.crc32(name.encode()) & 0x7FFFFFFF) for name in names}
