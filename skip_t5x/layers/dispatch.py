"""Executing a routed sublayer on the tokens that chose to run it.

A sublayer is given as ``fn(x_sub, rows) -> delta`` where
  x_sub: [batch, S, embed]   the residual-stream inputs of the tokens it runs on,
  rows:  [batch, S] int32    their row indices in `x` (for causal masks and positions),
  delta: [batch, S, embed]   the sublayer's contribution (its output minus its input).
Decisions arrive as `keep` [batch, length] bool: the tokens that execute, capacity already applied.
Routed output: ``y = x + gate * delta`` for executed tokens, ``y = x`` for skipped ones.

Two dispatch modes with the same semantics:
- ``masked``: the sublayer runs on every token (S = length) and ``jnp.where`` selects. The reference.
- ``gather``: per sequence at most C = ceil(capacity_factor * P * length) tokens run; executing tokens past C, counted
  in position order, are skipped (so overflow never depends on the future: routing stays causal). The kept tokens are
  gathered into [batch, C, embed], the sublayer runs on them only, and the results are scattered back. Gather and
  scatter are written per sequence and vmapped over the batch, so batch sharding needs no collectives.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

SublayerFn = Callable[[jax.Array, jax.Array], jax.Array]


def apply_capacity(execute: jax.Array, capacity: int) -> jax.Array:
  """Keeps the first `capacity` executing tokens of each sequence (position order). [batch, length] bool."""
  running_count = jnp.cumsum(execute.astype(jnp.int32), axis=-1)  # [batch, length]
  return execute & (running_count <= capacity)


def kept_token_indices(keep: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array]:
  """Row indices of kept tokens in position order, padded to `capacity`.

  Args:
    keep: [batch, length] bool, at most `capacity` True per row.
  Returns:
    rows: [batch, capacity] int32 (padding slots point at row 0), valid: [batch, capacity] bool.
  """
  length = keep.shape[-1]

  def one_sequence(keep_row):  # [length]
    slot = jnp.cumsum(keep_row.astype(jnp.int32)) - 1  # [length]: slot of each kept token
    slot = jnp.where(keep_row, slot, capacity)  # non-kept tokens write out of range and are dropped
    rows = jnp.zeros((capacity,), jnp.int32).at[slot].set(jnp.arange(length, dtype=jnp.int32), mode="drop")
    valid = jnp.arange(capacity) < jnp.sum(keep_row)
    return rows, valid

  return jax.vmap(one_sequence)(keep)


def gather_tokens(x: jax.Array, rows: jax.Array) -> jax.Array:
  """x: [batch, length, ...], rows: [batch, S] -> [batch, S, ...] (vmapped: no cross-batch collectives)."""
  return jax.vmap(lambda xr, ir: xr[ir])(x, rows)


def scatter_add_tokens(x: jax.Array, rows: jax.Array, updates: jax.Array) -> jax.Array:
  """x: [batch, length, embed] plus updates [batch, S, embed] added at rows [batch, S]."""
  return jax.vmap(lambda xr, ir, ur: xr.at[ir].add(ur))(x, rows, updates)


def masked_dispatch(x: jax.Array, keep: jax.Array, gate: jax.Array, fn: SublayerFn) -> jax.Array:
  """Runs `fn` on every token and keeps its contribution where `keep`. x: [batch, length, embed]."""
  batch, length = keep.shape
  rows = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))  # [batch, length]
  delta = fn(x, rows)  # [batch, length, embed]
  scaled = gate[..., None].astype(delta.dtype) * delta
  return x + jnp.where(keep[..., None], scaled, jnp.zeros_like(scaled)).astype(x.dtype)


def gather_dispatch(x: jax.Array, keep: jax.Array, gate: jax.Array, fn: SublayerFn, capacity: int) -> jax.Array:
  """Runs `fn` on the (at most `capacity` per sequence) kept tokens only. x: [batch, length, embed]."""
  rows, valid = kept_token_indices(keep, capacity)  # [batch, capacity] x2
  x_sub = gather_tokens(x, rows)  # [batch, capacity, embed]
  delta = fn(x_sub, rows)  # [batch, capacity, embed]
  gate_sub = jnp.take_along_axis(gate, rows, axis=-1) * valid  # [batch, capacity]
  update = gate_sub[..., None].astype(delta.dtype) * delta
  return scatter_add_tokens(x, rows, update.astype(x.dtype))
