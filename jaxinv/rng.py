"""One seed → named keys. A name maps to the same key whatever other names exist."""

import zlib

import jax


def named_subkeys(key, names) -> dict:
  """`{name: fold_in(key, crc32(name))}`: one independent key per purpose."""
  return {name: jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF) for name in names}


def named_keys(seed: int, names) -> dict:
  return named_subkeys(jax.random.key(seed), names)
