"""Blockwise (flash) attention in plain JAX: O(length) memory, any queries, masks built one tile at a time.

Forward: for each block of `block_q` queries, an online softmax over blocks of `block_k` keys keeps a running max,
normaliser and weighted sum in float32, so no [S, T] score matrix exists; only a [block_q, block_k] tile per head.
Backward (a custom VJP, FlashAttention-2 style): the forward saves its output and the per-query log-sum-exp; the
backward recomputes each tile's probabilities from them and accumulates dQ, dK, dV tile by tile. Nothing the size of
S x T is ever saved, whatever remat policy wraps it.

The mask (causality by original rows, segments, dropped keys) comes as an `AttentionMask` and is evaluated per tile,
so routed queries (a gathered subset attending by their original rows), packed sequences and decode chunks at a
cache offset all work. When the mask says the queries are a contiguous chunk (`q_start`), key blocks wholly in the
future are skipped (about half the work of causal attention).

Inside, queries are laid out head-major ([batch, kv, group, S, dim]) and keys/values [batch, kv, T, dim], so every
tile product is a plain batched matmul (1.5x faster forward on CPU than sequence-major tiles, same results).

The output and log-sum-exp carry the checkpoint name `ATTENTION_RESIDUALS`: a remat policy that saves that name keeps
the attention output and never reruns the attention forward in the backward pass.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from skip_t5x.layers.attention_mask import AttentionMask, allowed_block

ATTENTION_RESIDUALS = "attention_residuals"  # checkpoint name of the attention output and log-sum-exp
DEFAULT_BLOCK = 512


@dataclasses.dataclass(frozen=True)
class _Tiling:
  """Static sizes: query/key blocks, block counts and the true (unpadded) number of keys."""

  block_q: int
  block_k: int
  num_q_blocks: int
  num_k_blocks: int
  num_keys: int


def blockwise_attention(queries: jax.Array, keys: jax.Array, values: jax.Array, mask: AttentionMask, *,
                        block_q: int = DEFAULT_BLOCK, block_k: int = DEFAULT_BLOCK) -> jax.Array:
  """softmax(queries . keys^T, masked) . values, blockwise.

  Args:
    queries: [batch, S, heads, head_dim], already scaled by head_dim ** -0.5.
    keys, values: [batch, T, kv_heads, head_dim]; heads is a multiple of kv_heads (grouped queries).
    mask: rows / segments / key mask of the call (see attention_mask.py).
    block_q, block_k: tile sizes (capped at S and T; S and T are padded up to multiples of them).
  Returns:
    [batch, S, heads, head_dim] in the queries' dtype; a query with no allowed key gets zeros.
  """
  batch, num_queries, heads, dim = queries.shape
  num_keys, kv_heads = keys.shape[1], keys.shape[2]
  if block_q <= 0 or block_k <= 0:
    raise ValueError(f"block sizes must be positive, got block_q={block_q}, block_k={block_k}")
  if heads % kv_heads:
    raise ValueError(f"query heads {heads} must be a multiple of key/value heads {kv_heads}")
  bq, bk = min(block_q, num_queries), min(block_k, num_keys)
  tiling = _Tiling(bq, bk, -(-num_queries // bq), -(-num_keys // bk), num_keys)
  pad_q, pad_k = tiling.num_q_blocks * bq - num_queries, tiling.num_k_blocks * bk - num_keys
  # Head-major layouts: every tile product below is a plain batched matmul over (batch, kv, group).
  q = queries.reshape(batch, num_queries, kv_heads, heads // kv_heads, dim).transpose(0, 2, 3, 1, 4)
  q = _pad_axis(q, 3, pad_q)  # [batch, kv, group, Sp, dim]
  k, v = (_pad_axis(x.transpose(0, 2, 1, 3), 2, pad_k) for x in (keys, values))  # [batch, kv, Tp, dim]
  padded = _pad_mask(mask, pad_q, pad_k)
  out = _flash(q, k, v, padded, tiling)  # [batch, kv, group, Sp, dim]
  return out[:, :, :, :num_queries].transpose(0, 3, 1, 2, 4).reshape(batch, num_queries, heads, dim)


def _pad_axis(x, axis: int, amount: int, value=0):
  """x padded with `amount` entries of `value` at the end of `axis` (x itself when None or nothing to pad)."""
  if x is None or amount == 0:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, amount)
  return jnp.pad(x, widths, constant_values=value)


def _pad_mask(mask: AttentionMask, pad_q: int, pad_k: int) -> AttentionMask:
  """Padded queries get row -1 (no key allowed); per-key arrays are padded so every key tile can be sliced."""
  return AttentionMask(
      q_rows=_pad_axis(mask.q_rows.astype(jnp.int32), 1, pad_q, -1),
      q_segments=_pad_axis(mask.q_segments, 1, pad_q),
      key_segments=_pad_axis(mask.key_segments, 1, pad_k),
      key_mask=_pad_axis(None if mask.key_mask is None else mask.key_mask.astype(bool), 1, pad_k, False),
      q_start=mask.q_start)


def _q_block_rows(mask: AttentionMask, start: jax.Array, size: int):
  """Rows and segments of the queries start .. start + size - 1: [batch, size] each (segments may be None)."""
  rows = jax.lax.dynamic_slice_in_dim(mask.q_rows, start, size, axis=1)
  segments = None if mask.q_segments is None else jax.lax.dynamic_slice_in_dim(mask.q_segments, start, size, axis=1)
  return rows, segments


def _last_key_block(mask: AttentionMask, q_block: jax.Array, t: _Tiling):
  """Key blocks [0, result) can hold keys the query block may see (all of them unless the chunk is contiguous)."""
  if mask.q_start is None:
    return t.num_k_blocks
  last_row = jnp.asarray(mask.q_start, jnp.int32) + (q_block + 1) * t.block_q - 1
  return jnp.clip(last_row // t.block_k + 1, 0, t.num_k_blocks)


def _first_query_block(mask: AttentionMask, k_block: jax.Array, t: _Tiling):
  """Query blocks [result, num_q_blocks) can see keys of the key block (all of them unless contiguous)."""
  if mask.q_start is None:
    return 0
  first = (k_block * t.block_k - jnp.asarray(mask.q_start, jnp.int32)) // t.block_q
  return jnp.clip(first, 0, t.num_q_blocks)


def _tile_scores(q_blk, k_blk, mask, q_rows, q_segments, k_start, t: _Tiling):
  """Scores [batch, kv, group, bq, bk] in float32 and the tile's allowed mask [batch, 1, 1, bq, bk]."""
  scores = jnp.einsum("bkgqd,bktd->bkgqt", q_blk, k_blk, preferred_element_type=jnp.float32)
  allowed = allowed_block(mask, q_rows, q_segments, k_start, t.block_k, t.num_keys)[:, None, None]
  return scores, allowed


def _forward(q, k, v, mask: AttentionMask, t: _Tiling):
  """Output [batch, kv, group, Sp, dim] (q's dtype) and log-sum-exp [batch, kv, group, Sp] (float32)."""
  batch, kv_heads, groups, _, dim = q.shape
  out = jnp.zeros(q.shape, q.dtype)
  lse = jnp.zeros((batch, kv_heads, groups, q.shape[3]), jnp.float32)

  def query_block(i, buffers):
    out, lse = buffers
    start = i * t.block_q
    q_blk = jax.lax.dynamic_slice_in_dim(q, start, t.block_q, axis=3)  # [batch, kv, group, bq, dim]
    q_rows, q_segments = _q_block_rows(mask, start, t.block_q)

    def key_block(j, carry):
      running_max, normaliser, acc = carry  # [b, kv, g, bq] x2, [b, kv, g, bq, dim]
      k_start = j * t.block_k
      k_blk = jax.lax.dynamic_slice_in_dim(k, k_start, t.block_k, axis=2)  # [batch, kv, bk, dim]
      v_blk = jax.lax.dynamic_slice_in_dim(v, k_start, t.block_k, axis=2)
      scores, allowed = _tile_scores(q_blk, k_blk, mask, q_rows, q_segments, k_start, t)
      scores = jnp.where(allowed, scores, -jnp.inf)
      new_max = jnp.maximum(running_max, jnp.max(scores, axis=-1))
      safe_max = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
      probs = jnp.exp(scores - safe_max[..., None])  # [b, kv, g, bq, bk]; masked keys give exactly 0
      correction = jnp.exp(running_max - safe_max)
      normaliser = normaliser * correction + jnp.sum(probs, axis=-1)
      update = jnp.einsum("bkgqt,bktd->bkgqd", probs.astype(v.dtype), v_blk, preferred_element_type=jnp.float32)
      return new_max, normaliser, acc * correction[..., None] + update

    stats_shape = (batch, kv_heads, groups, t.block_q)
    init = (jnp.full(stats_shape, -jnp.inf, jnp.float32), jnp.zeros(stats_shape, jnp.float32),
            jnp.zeros(stats_shape + (dim,), jnp.float32))
    running_max, normaliser, acc = jax.lax.fori_loop(0, _last_key_block(mask, i, t), key_block, init)
    seen = normaliser > 0
    block_out = jnp.where(seen[..., None], acc / jnp.where(seen, normaliser, 1.0)[..., None], 0.0)
    block_lse = jnp.where(seen, running_max + jnp.log(jnp.where(seen, normaliser, 1.0)), jnp.inf)
    out = jax.lax.dynamic_update_slice_in_dim(out, block_out.astype(q.dtype), start, axis=3)
    return out, jax.lax.dynamic_update_slice_in_dim(lse, block_lse, start, axis=3)

  return jax.lax.fori_loop(0, t.num_q_blocks, query_block, (out, lse))


def _backward(q, k, v, mask: AttentionMask, out, lse, d_out, t: _Tiling):
  """dQ, dK, dV (float32) by recomputing each tile's probabilities from the saved log-sum-exp."""
  # delta[b, k, g, s] = sum_d dO . O: the softmax backward's row term
  delta = jnp.einsum("bkgsd,bkgsd->bkgs", d_out.astype(jnp.float32), out.astype(jnp.float32))

  def key_block(j, grads):
    d_q, d_k, d_v = grads
    k_start = j * t.block_k
    k_blk = jax.lax.dynamic_slice_in_dim(k, k_start, t.block_k, axis=2)  # [batch, kv, bk, dim]
    v_blk = jax.lax.dynamic_slice_in_dim(v, k_start, t.block_k, axis=2)

    def query_block(i, carry):
      d_q, d_k_blk, d_v_blk = carry
      start = i * t.block_q
      q_blk = jax.lax.dynamic_slice_in_dim(q, start, t.block_q, axis=3)  # [batch, kv, group, bq, dim]
      d_out_blk = jax.lax.dynamic_slice_in_dim(d_out, start, t.block_q, axis=3)
      lse_blk = jax.lax.dynamic_slice_in_dim(lse, start, t.block_q, axis=3)  # [batch, kv, group, bq]
      delta_blk = jax.lax.dynamic_slice_in_dim(delta, start, t.block_q, axis=3)
      q_rows, q_segments = _q_block_rows(mask, start, t.block_q)
      scores, allowed = _tile_scores(q_blk, k_blk, mask, q_rows, q_segments, k_start, t)
      probs = jnp.where(allowed, jnp.exp(scores - lse_blk[..., None]), 0.0)  # [b, kv, g, bq, bk]
      d_v_blk += jnp.einsum("bkgqt,bkgqd->bktd", probs.astype(v.dtype), d_out_blk, preferred_element_type=jnp.float32)
      d_probs = jnp.einsum("bkgqd,bktd->bkgqt", d_out_blk, v_blk, preferred_element_type=jnp.float32)
      d_scores = (probs * (d_probs - delta_blk[..., None])).astype(q.dtype)
      d_k_blk += jnp.einsum("bkgqt,bkgqd->bktd", d_scores, q_blk, preferred_element_type=jnp.float32)
      d_q_blk = jnp.einsum("bkgqt,bktd->bkgqd", d_scores, k_blk, preferred_element_type=jnp.float32)
      d_q_blk += jax.lax.dynamic_slice_in_dim(d_q, start, t.block_q, axis=3)
      return jax.lax.dynamic_update_slice_in_dim(d_q, d_q_blk, start, axis=3), d_k_blk, d_v_blk

    zeros = jnp.zeros(k_blk.shape, jnp.float32)
    d_q, d_k_blk, d_v_blk = jax.lax.fori_loop(
        _first_query_block(mask, j, t), t.num_q_blocks, query_block, (d_q, zeros, zeros))
    d_k = jax.lax.dynamic_update_slice_in_dim(d_k, d_k_blk, k_start, axis=2)
    return d_q, d_k, jax.lax.dynamic_update_slice_in_dim(d_v, d_v_blk, k_start, axis=2)

  init = (jnp.zeros(q.shape, jnp.float32), jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32))
  return jax.lax.fori_loop(0, t.num_k_blocks, key_block, init)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _flash(q, k, v, mask: AttentionMask, t: _Tiling):
  return _flash_fwd(q, k, v, mask, t)[0]


def _flash_fwd(q, k, v, mask, t):
  out, lse = _forward(q, k, v, mask, t)
  out = checkpoint_name(out, ATTENTION_RESIDUALS)  # remat policies save these two, not the inputs' tiles
  lse = checkpoint_name(lse, ATTENTION_RESIDUALS)
  return out, (q, k, v, mask, out, lse)


def _flash_bwd(t, residuals, d_out):
  q, k, v, mask, out, lse = residuals
  d_q, d_k, d_v = _backward(q, k, v, mask, out, lse, d_out, t)
  return d_q.astype(q.dtype), d_k.astype(k.dtype), d_v.astype(v.dtype), None  # None: the integer mask


_flash.defvjp(_flash_fwd, _flash_bwd)
