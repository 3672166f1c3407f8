"""What incremental decoding carries between model calls: the cache, its batch axes, and one decode step.

The "cache" collection holds, per layer, the KV cache (keys, values, key mask, the cache index) and, under
gather dispatch, the per-row executed-token counters and capacities C (see layers/kv_cache.py, layers/skip.py).
Prefill, the greedy/sampling loop and beam search all go through the helpers here: a zeroed cache for a length,
its rows repeated per beam and reordered when beams are selected, and one decode step.
"""
from __future__ import annotations

from typing import Mapping, Optional

import flax
import jax
import jax.numpy as jnp

from skip_t5x.model.api import DecodableModel

Path = tuple[str, ...]


def decisions_of(routing_stats: Mapping[str, Mapping[str, jax.Array]]) -> dict[str, jax.Array]:
  """{routed module name: execute mask [batch, length] bool} from the decoder's routing stats."""
  return {name: stats["execute"] for name, stats in sorted(routing_stats.items())}


def cache_shapes(model: DecodableModel, params, batch_size: int, length: int) -> dict[Path, jax.ShapeDtypeStruct]:
  """Flat {variable path: shape} of the cache for `batch_size` rows of `length` positions (traced, no compute)."""
  tokens = jax.ShapeDtypeStruct((batch_size, length), jnp.int32)
  shapes = jax.eval_shape(
      lambda t: model.module.apply({"params": params}, t, decode=True, mutable=["cache"])[1]["cache"], tokens)
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(shapes))


def init_cache(model: DecodableModel, params, batch_size: int, length: int,
               row_lengths: Optional[jax.Array] = None):
  """Zeroed cache for `length` positions, with the gather capacity set.

  row_lengths: [batch] each row's prompt + decode length; its capacity is then what a full forward over that row
  alone computes (RoutingConfig.row_capacity), whatever the batch's padded width. None: capacity(length).
  """
  routing = model.config.routing

  def initial(path: Path, shape: jax.ShapeDtypeStruct) -> jax.Array:
    if path[-1] != "capacity":
      return jnp.zeros(shape.shape, shape.dtype)
    if row_lengths is None or not shape.shape:
      return jnp.full(shape.shape, routing.capacity(length), shape.dtype)
    return jnp.broadcast_to(routing.row_capacity(row_lengths, length), shape.shape).astype(shape.dtype)

  cache = {path: initial(path, s) for path, s in cache_shapes(model, params, batch_size, length).items()}
  return flax.traverse_util.unflatten_dict(cache)


def cache_batch_axes(model: DecodableModel, params, length: int) -> dict[Path, Optional[int]]:
  """{cache variable path: its batch axis, or None for values shared by all rows}.

  Found by comparing the cache shapes for one and two rows, so it holds for scanned layers (a leading layer axis)
  and for any cache variable a layer adds.
  """
  one, two = cache_shapes(model, params, 1, length), cache_shapes(model, params, 2, length)
  axes = {}
  for path, shape in one.items():
    differing = [i for i, (a, b) in enumerate(zip(shape.shape, two[path].shape)) if a != b]
    axes[path] = differing[0] if differing else None
  return axes


def _map_rows(cache, axes: Mapping[Path, Optional[int]], fn):
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(cache))
  return flax.traverse_util.unflatten_dict(
      {path: value if axes[path] is None else fn(value, axes[path]) for path, value in flat.items()})


def repeat_rows(cache, axes: Mapping[Path, Optional[int]], times: int):
  """Each row repeated `times` times in place (row b -> rows b * times .. b * times + times - 1): one per beam."""
  return _map_rows(cache, axes, lambda value, axis: jnp.repeat(value, times, axis=axis))


def take_beams(cache, axes: Mapping[Path, Optional[int]], beams: jax.Array):
  """Beam selection: row b * K + k of the result is row b * K + beams[b, k] (keys, values, key masks, counters,
  capacities). beams: [batch, K]. Written per example (vmap over the batch), so a batch-sharded cache needs no
  collective."""
  batch, k = beams.shape

  def take(value, axis):
    shaped = value.reshape(value.shape[:axis] + (batch, k) + value.shape[axis + 1:])
    taken = jax.vmap(lambda x, i: jnp.take(x, i, axis=axis), in_axes=(axis, 0), out_axes=axis)(shaped, beams)
    return taken.reshape(value.shape)

  return _map_rows(cache, axes, take)


def decode_step(model: DecodableModel, params, cache, tokens: jax.Array, positions: jax.Array):
  """One new token per row. tokens, positions: [batch] -> (logits [batch, vocab], cache, {module: [batch] bool})."""
  (logits, routing_stats), state = model.module.apply(
      {"params": params, "cache": cache}, tokens[:, None], positions[:, None],
      deterministic=True, decode=True, mutable=["cache"])
  decisions = {name: mask[:, 0] for name, mask in decisions_of(routing_stats).items()}
  return logits[:, 0], state["cache"], decisions
