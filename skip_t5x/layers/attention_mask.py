"""Which keys each query may attend, described by rows and segment ids instead of a [batch, S, T] tensor.

Keys sit at rows 0..T-1 of the full sequence (or of the KV cache). Each query carries its row (a routed subset of
queries keeps its original rows; a decode chunk at cache index i has rows i, i+1, ...). Query s may attend key t
when
  t <= q_rows[s]                             (causal, by original row)
  and q_segments[s] == key_segments[t]       (packed sequences; when segments are given)
  and key_mask[t]                            (dropped keys, e.g. skipped tokens under MoD-style routing).
Attention implementations build this mask one [block_q, block_k] tile at a time (`allowed_block`), so memory stays
O(length); `materialize` builds the whole [batch, S, T] tensor for the dense-scores reference.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Union

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class AttentionMask:
  """Rows, segments and key mask of one attention call (a pytree: passes through jit, scan and custom_vjp).

  q_start: when not None, the caller guarantees q_rows[b, s] == q_start + s for every row b (a contiguous chunk:
  the plain causal case, or a decode chunk at a cache offset). Implementations then skip key blocks that lie
  wholly in the future and may use a fused causal kernel. A scalar (int or traced int32), shared by the batch.
  """

  q_rows: jax.Array  # [batch, S] int32
  q_segments: Optional[jax.Array] = None  # [batch, S]
  key_segments: Optional[jax.Array] = None  # [batch, T]
  key_mask: Optional[jax.Array] = None  # [batch, T] bool
  q_start: Optional[Union[int, jax.Array]] = None

  @property
  def has_segments(self) -> bool:
    return self.q_segments is not None and self.key_segments is not None

  def is_plain_causal(self, num_keys: int) -> bool:
    """Queries are all rows 0..T-1 in order, keys are not masked: what fused causal kernels compute."""
    return (self.key_mask is None and isinstance(self.q_start, int) and self.q_start == 0
            and self.q_rows.shape[1] == num_keys)


jax.tree_util.register_dataclass(
    AttentionMask, data_fields=["q_rows", "q_segments", "key_segments", "key_mask", "q_start"], meta_fields=[])


def contiguous_mask(batch: int, num_queries: int, q_start: Union[int, jax.Array] = 0, q_segments=None,
                    key_segments=None, key_mask=None) -> AttentionMask:
  """The mask of a contiguous query chunk: rows q_start .. q_start + S - 1 for every sequence."""
  rows = jnp.arange(num_queries, dtype=jnp.int32) + jnp.asarray(q_start, jnp.int32)
  rows = jnp.broadcast_to(rows, (batch, num_queries))  # [batch, S]
  return AttentionMask(rows, q_segments, key_segments, key_mask, q_start)


def allowed_block(mask: AttentionMask, q_rows: jax.Array, q_segments: Optional[jax.Array], k_start: jax.Array,
                  block_k: int, num_keys: int) -> jax.Array:
  """allowed[b, s, t] for one tile: queries `q_rows` [batch, bq] against keys k_start .. k_start + block_k - 1.

  Key rows at or past `num_keys` (padding of the last block) are never allowed.
  """
  key_rows = k_start + jnp.arange(block_k, dtype=jnp.int32)  # [bk]
  allowed = (key_rows[None, None, :] <= q_rows[:, :, None]) & (key_rows < num_keys)[None, None, :]  # [b, bq, bk]
  if q_segments is not None and mask.key_segments is not None:
    key_segments = _key_slice(mask.key_segments, k_start, block_k)  # [batch, bk]
    allowed &= q_segments[:, :, None] == key_segments[:, None, :]
  if mask.key_mask is not None:
    allowed &= _key_slice(mask.key_mask.astype(bool), k_start, block_k)[:, None, :]
  return allowed


def _key_slice(per_key: jax.Array, k_start: jax.Array, block_k: int) -> jax.Array:
  """per_key [batch, T_padded] -> [batch, block_k] starting at k_start (T_padded is a multiple of block_k)."""
  return jax.lax.dynamic_slice_in_dim(per_key, k_start, block_k, axis=1)


def materialize(mask: AttentionMask, num_keys: int) -> jax.Array:
  """The whole allowed[b, s, t] tensor [batch, S, T] (dense-scores attention only: O(S x T) memory)."""
  return allowed_block(mask, mask.q_rows, mask.q_segments, jnp.zeros((), jnp.int32), num_keys, num_keys)
