"""Causal multi-head attention with RoPE, grouped KV heads and a KV cache; queries may be a gathered subset.

Under routing, keys and values are computed for EVERY token from the (normalized) layer input, so the KV cache stays
complete; only executed tokens form queries. Queries carry their row index in the full sequence, so causality is by
original position whatever subset of tokens is being run.

The mask arrives as rows / segments / key mask (`AttentionMask`), never as a [batch, S, T] tensor, and one of three
implementations computes the attention (`Attention.implementation`):
  'auto'          a fused causal kernel where the platform has one and the call is plain causal (splash on TPU,
                  cuDNN on GPU), else blockwise (fused_attention.py);
  'blockwise'     online-softmax attention over key blocks, O(length) memory (blockwise_attention.py);
  'dense_scores'  the float32 [batch, kv, group, S, T] scores in one piece: the reference, O(S x T) memory.
Tensors carry checkpoint names (CHECKPOINT_NAMES) for the decoder's remat policies.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from skip_t5x.layers import fused_attention
from skip_t5x.layers.attention_mask import AttentionMask, materialize
from skip_t5x.layers.blockwise_attention import ATTENTION_RESIDUALS, blockwise_attention

NEG_INF = -1e30
# Checkpoint names: the attention output and its log-sum-exp (what the backward pass needs to skip rerunning the
# attention itself), and the projections, which cost one [batch, length, heads x head_dim] tensor each.
CHECKPOINT_NAMES = {
    "residuals": ATTENTION_RESIDUALS,
    "query": "attention_query",
    "key": "attention_key",
    "value": "attention_value",
    "output": "attention_output",
}


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
  implementation: str = "auto"  # 'auto' | 'blockwise' | 'dense_scores' (see the module docstring)

  def setup(self):
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}")
    if self.implementation not in fused_attention.IMPLEMENTATIONS:
      raise ValueError(f"attention implementation {self.implementation!r} must be one of "
                       f"{fused_attention.IMPLEMENTATIONS}")
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
    return checkpoint_name(keys, CHECKPOINT_NAMES["key"]), checkpoint_name(values, CHECKPOINT_NAMES["value"])

  def attend(
      self,
      x_q: jax.Array,
      q_positions: jax.Array,
      keys: jax.Array,
      values: jax.Array,
      mask: AttentionMask,
  ) -> jax.Array:
    """Attends a subset of queries to all keys.

    Args:
      x_q: [batch, S, embed] normalized inputs of the query tokens.
      q_positions: [batch, S] their RoPE positions.
      keys, values: [batch, T, kv_heads, head_dim].
      mask: the queries' rows, segments and the key mask (causality, packing, dropped keys); see attention_mask.py.
    Returns:
      [batch, S, embed] attention output after the output projection.
    """
    queries = jnp.einsum("bse,ehd->bshd", x_q.astype(self.dtype), self.w_query.astype(self.dtype))
    queries = rotary_embedding(queries, q_positions, self.rope_max_wavelength)  # [batch, S, heads, head_dim]
    queries = checkpoint_name(queries * (self.head_dim ** -0.5), CHECKPOINT_NAMES["query"])
    context = attention_context(queries, keys, values, mask, self.implementation)  # [batch, S, heads, head_dim]
    context = nn.with_logical_constraint(context, ("batch", "length", "heads", "kv"))
    output = jnp.einsum("bshd,hde->bse", context, self.w_out.astype(self.dtype))  # [batch, S, embed]
    return checkpoint_name(output, CHECKPOINT_NAMES["output"])


def attention_context(queries: jax.Array, keys: jax.Array, values: jax.Array, mask: AttentionMask,
                      implementation: str = "auto") -> jax.Array:
  """softmax(q . k^T, masked) . v by the chosen implementation.

  queries: [batch, S, heads, head_dim] (scaled); keys, values: [batch, T, kv_heads, head_dim] -> [batch, S, heads,
  head_dim].
  """
  platform = fused_attention.target_platform()
  kind = fused_attention.choose_implementation(
      implementation, platform=platform, mask=mask, num_keys=keys.shape[1], head_dim=queries.shape[-1],
      dtype=queries.dtype)
  if kind in ("splash", "cudnn"):
    with jax.named_scope(f"{kind}_attention"):  # the scope names the implementation (the AOT report lists them)
      context = fused_attention.fused_causal_attention(kind, queries, keys, values, mask)
    if context is not None:
      return context
    kind = "blockwise"
  if kind == "blockwise":
    block = fused_attention.blockwise_block_size(platform)
    with jax.named_scope("blockwise_attention"):
      return blockwise_attention(queries, keys, values, mask, block_q=block, block_k=block)
  with jax.named_scope("dense_scores_attention"):
    return dense_scores_attention(queries, keys, values, mask)


def dense_scores_attention(queries: jax.Array, keys: jax.Array, values: jax.Array, mask: AttentionMask) -> jax.Array:
  """The reference: float32 scores [batch, kv, group, S, T] in one piece. A query with no allowed key gets zeros."""
  batch, s, heads, dim = queries.shape
  kv_heads = keys.shape[2]
  queries = queries.reshape(batch, s, kv_heads, heads // kv_heads, dim)  # [batch, S, kv, group, dim]
  scores = jnp.einsum("bskgd,btkd->bkgst", queries, keys).astype(jnp.float32)  # [batch, kv, group, S, T]
  allowed = materialize(mask, keys.shape[1])[:, None, None, :, :]  # [batch, 1, 1, S, T]
  scores = jnp.where(allowed, scores, NEG_INF)
  probs = jnp.where(jnp.any(allowed, axis=-1, keepdims=True), jax.nn.softmax(scores, axis=-1), 0.0)
  context = jnp.einsum("bkgst,btkd->bskgd", probs.astype(values.dtype), values)  # [batch, S, kv, group, dim]
  return checkpoint_name(context.reshape(batch, s, heads, dim), ATTENTION_RESIDUALS)
