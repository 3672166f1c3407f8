"""Key/value cache for incremental decoding."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class KVCache(nn.Module):
  """Holds keys, values and a key mask for every position of the decode length.

  The first call (made while initializing the cache over the full decode length) creates zeroed buffers and passes
  its inputs through. Later calls write their `t` new positions at the cache index and return the whole buffer.
  """

  @nn.compact
  def __call__(
      self, keys: jax.Array, values: jax.Array, key_mask: jax.Array
  ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """keys, values: [batch, t, kv_heads, head_dim]; key_mask: [batch, t].

    Returns keys, values [batch, T, kv_heads, head_dim], key_mask [batch, T] and the row offset of the inputs.
    """
    initialized = self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, keys.shape, keys.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros, values.shape, values.dtype)
    cached_mask = self.variable("cache", "cached_key_mask", jnp.zeros, key_mask.shape, jnp.bool_)
    index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
    if not initialized:
      return keys, values, key_mask, jnp.array(0, jnp.int32)
    start = index.value
    cached_key.value = jax.lax.dynamic_update_slice_in_dim(cached_key.value, keys, start, axis=1)
    cached_value.value = jax.lax.dynamic_update_slice_in_dim(cached_value.value, values, start, axis=1)
    cached_mask.value = jax.lax.dynamic_update_slice_in_dim(cached_mask.value, key_mask.astype(bool), start, axis=1)
    index.value = start + keys.shape[1]
    return cached_key.value, cached_value.value, cached_mask.value, start
