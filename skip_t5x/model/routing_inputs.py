"""Routing side inputs of the decoder's layers: per-layer index and elastic threshold, and early exit's carry."""
from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np


def per_layer_route_inputs(config: Any, gap_thresholds: Optional[jax.Array]) -> dict[str, jax.Array]:
  """{'index': [num_layers] int32} and, when thresholds are given, 'gap_threshold': [num_layers] float32.

  gap_thresholds: [num_routed] elastic thresholds in routed-module order (NaN: the policy's own cut), else
  RoutingConfig.gap_thresholds; with neither, the policies decide exactly as trained.
  """
  inputs = {"index": jnp.arange(config.num_layers, dtype=jnp.int32)}
  if gap_thresholds is None and config.routing.gap_thresholds is not None:
    gap_thresholds = jnp.asarray(config.routing.gap_thresholds, jnp.float32)
  if gap_thresholds is not None:
    inputs["gap_threshold"] = jnp.full((config.num_layers,), jnp.nan, jnp.float32).at[
        np.flatnonzero(config.routed_layer_flags)].set(jnp.asarray(gap_thresholds, jnp.float32))
  return inputs


def initial_exit_state(config: Any, batch: int, length: int) -> Optional[jax.Array]:
  """Early exit's [batch, length, 2] (sampled, argmax) masks of tokens that have skipped a routed module."""
  if config.routing.enabled and config.routing.policy == "early_exit":
    return jnp.zeros((batch, length, 2), bool)
  return None
