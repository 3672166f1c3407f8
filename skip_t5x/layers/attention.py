"""Causal multi-head attention with RoPE, grouped KV heads and a KV cache; queries may be a gathered subset.

Under routing, keys and values are computed for EVERY token from the (normalized) layer input, so the KV cache stays
complete; only executed tokens form queries. Queries carry their row index in the full sequence, so causality is by
original position whatever subset of tokens is being run.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

NEG_INF = -1e30


def rotary_embedding(x: jax.Array, positions: jax.Array, max_wavelength: float) -> jax.Array:
  """Applies RoPE. x: [batch, tokens, heads, head_dim]; positions: [batch, tokens]."""
  head_dim = x.shape[-1]
  half = head_dim // 2
  inv_freq = max_wavelength ** (-jnp.arange(half, dtype=jnp.float32) / half)  # [half]
  angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [batch, tokens, half]
  sin = jnp.sin(angles)[:, :, None, :]  # [batch, tokens, 1, half]
  cos = jnp.cos(angles)[:, :, None, :]
  x32 = x.astype(jnp.float32)
  first, second = x32[..., :half], x32[..., half:]
  rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
  return rotated.astype(x.dtype)


class Attention(nn.Module):
  """Multi-head attention split into `keys_values` (all tokens) and `attend` (any subset of queries)."""

  features: int  # d_model
  num_heads: int
  num_kv_heads: int
  head_dim: int
  rope_max_wavelength: float = 10_000.0
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  def setup(self):
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}")
    embed, heads, kv_heads, dim = self.features, self.num_heads, self.num_kv_heads, self.head_dim

    def kernel(name, shape, axes, fan_in):
      init = nn.with_logical_partitioning(nn.initializers.normal(stddev=fan_in**-0.5), axes)
      return self.param(name, init, shape, self.param_dtype)

    self.w_query = kernel("query", (embed, heads, dim), ("embed", "heads", "kv"), embed)
    self.w_key = kernel("key", (embed, kv_heads, dim), ("embed", "heads", "kv"), embed)
    self.w_value = kernel("value", (embed, kv_heads, dim), ("embed", "heads", "kv"), embed)
    self.w_out = kernel("out", (heads, dim, embed), ("heads", "kv", "embed"), heads * dim)

  def keys_values(self, x: jax.Array, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x: [batch, length, embed] normalized input -> keys, values [batch, length, kv_heads, head_dim]."""
    x = x.astype(self.dtype)
    keys = jnp.einsum("bte,ehd->bthd", x, self.w_key.astype(self.dtype))
    values = jnp.einsum("bte,ehd->bthd", x, self.w_value.astype(self.dtype))
    keys = rotary_embedding(keys, positions, self.rope_max_wavelength)
    keys = nn.with_logical_constraint(keys, ("batch", "length", "heads", "kv"))
    values = nn.with_logical_constraint(values, ("batch", "length", "heads", "kv"))
    return keys, values

  def attend(
      self,
      x_q: jax.Array,
      q_positions: jax.Array,
      keys: jax.Array,
      values: jax.Array,
      allowed: jax.Array,
  ) -> jax.Array:
    """Attends a subset of queries to all keys.

    Args:
      x_q: [batch, S, embed] normalized inputs of the query tokens.
      q_positions: [batch, S] their RoPE positions.
      keys, values: [batch, T, kv_heads, head_dim].
      allowed: [batch, S, T] bool attention mask (causality, segments, dropped keys); see `causal_mask`.
    Returns:
      [batch, S, embed] attention output after the output projection.
    """
    groups = self.num_heads // self.num_kv_heads
    queries = jnp.einsum("bse,ehd->bshd", x_q.astype(self.dtype), self.w_query.astype(self.dtype))
    queries = rotary_embedding(queries, q_positions, self.rope_max_wavelength)  # [batch, S, heads, head_dim]
    queries = queries * (self.head_dim ** -0.5)
    batch, s = queries.shape[:2]
    queries = queries.reshape(batch, s, self.num_kv_heads, groups, self.head_dim)  # [batch, S, kv, group, dim]
    scores = jnp.einsum("bskgd,btkd->bkgst", queries, keys).astype(jnp.float32)  # [batch, kv, group, S, T]
    scores = jnp.where(allowed[:, None, None, :, :], scores, NEG_INF)
    probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    context = jnp.einsum("bkgst,btkd->bskgd", probs, values)  # [batch, S, kv, group, dim]
    context = context.reshape(batch, s, self.num_heads, self.head_dim)
    context = nn.with_logical_constraint(context, ("batch", "length", "heads", "kv"))
    return jnp.einsum("bshd,hde->bse", context, self.w_out.astype(self.dtype))  # [batch, S, embed]


def causal_mask(
    q_rows: jax.Array,
    key_rows: jax.Array,
    q_segments: jax.Array | None = None,
    key_segments: jax.Array | None = None,
    key_mask: jax.Array | None = None,
) -> jax.Array:
  """allowed[b, s, t] = key t is at or before query s, in the same segment, and not masked out.

  q_rows: [batch, S]; key_rows: [T] or [batch, T]; segments: [batch, S] / [batch, T]; key_mask: [batch, T].
  """
  key_rows = jnp.broadcast_to(key_rows, (q_rows.shape[0], key_rows.shape[-1]))
  allowed = key_rows[:, None, :] <= q_rows[:, :, None]  # [batch, S, T]
  if q_segments is not None and key_segments is not None:
    allowed &= q_segments[:, :, None] == key_segments[:, None, :]
  if key_mask is not None:
    allowed &= key_mask[:, None, :].astype(bool)
  return allowed
