"""Shardings of parameter trees and batches: logical names -> NamedShardings, host batches -> global arrays."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Tuple

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from skip_t5x.parallel.mesh import LogicalRules, mesh_context


def _fit_spec(spec: PartitionSpec, shape: Tuple[int, ...], mesh: Mesh) -> PartitionSpec:
  """Drops mesh axes from dimensions they do not divide (and trims/extends the spec to the array rank).

  Optimizer states such as Adafactor's factored second moments inherit their parameter's logical names but have a
  different shape (e.g. [1] or a reduced rank); those dimensions are replicated instead.
  """
  entries = list(spec) if len(spec) == len(shape) else [None] * len(shape)
  fitted = []
  for dim, axes in zip(shape, entries):
    if axes is None:
      fitted.append(None)
      continue
    names = axes if isinstance(axes, tuple) else (axes,)
    size = math.prod(mesh.shape[n] for n in names)
    fitted.append(axes if dim % size == 0 else None)
  return PartitionSpec(*fitted)


def _is_box(x: Any) -> bool:
  return isinstance(x, nn.Partitioned)


def strip_boxes(tree: Any) -> Any:
  """Replaces nn.Partitioned boxes by their values, without the sharding constraint nn.unbox adds under a mesh.

  (Optimizer states inherit boxes whose names may not match their rank, so nn.unbox would fail on them.)
  """
  return jax.tree.map(lambda x: x.value if _is_box(x) else x, tree, is_leaf=_is_box)


def tree_shardings(abstract_tree: Any, mesh: Mesh, rules: LogicalRules) -> Any:
  """NamedShardings for a tree whose leaves are abstract arrays, possibly boxed in ``nn.Partitioned``.

  The result has the structure of the *unboxed* tree (boxes replaced by their sharding); unboxed leaves are
  replicated. Mesh axes that do not divide a dimension are dropped for that dimension.
  """
  logical_specs = nn.get_partition_spec(abstract_tree)
  mesh_shardings = nn.logical_to_mesh_sharding(logical_specs, mesh, rules)
  unboxed = strip_boxes(abstract_tree)

  def fit(sharding: NamedSharding, leaf: Any) -> NamedSharding:
    shape = tuple(getattr(leaf, "shape", ()))
    return NamedSharding(mesh, _fit_spec(sharding.spec, shape, mesh))

  return jax.tree.map(fit, mesh_shardings, unboxed)


def batch_sharding(mesh: Mesh, rules: LogicalRules) -> NamedSharding:
  """Sharding of a [batch, length] input array."""
  spec = nn.logical_to_mesh_axes(("batch", "length"), rules)
  return NamedSharding(mesh, spec)


def make_global_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh, rules: LogicalRules) -> dict:
  """Assembles per-host numpy batches ([batch / num_processes, length]) into global sharded jax.Arrays."""
  sharding = batch_sharding(mesh, rules)
  out = {}
  for name, local in local_batch.items():
    local = np.asarray(local)
    global_shape = (local.shape[0] * jax.process_count(),) + local.shape[1:]
    out[name] = jax.make_array_from_process_local_data(sharding, local, global_shape)
  return out


def abstract_sharded(init: Callable[[jax.Array], Any], mesh: Mesh, rules: LogicalRules) -> Tuple[Any, Any]:
  """(abstract tree with shardings attached, shardings) of ``init(rng)``'s boxed output; allocates nothing.

  ``init`` returns a tree whose leaves may be boxed in nn.Partitioned (model params, a train state over them).
  The key is abstract too: topology devices (AOT) cannot run code.
  """
  with mesh_context(mesh, rules):
    boxed = jax.eval_shape(lambda: init(jax.random.key(0)))
  shardings = tree_shardings(boxed, mesh, rules)
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), strip_boxes(boxed),
                          shardings)
  return abstract, shardings


def sharded_init(init: Callable[[jax.Array], Any], mesh: Mesh, rules: LogicalRules, rng: jax.Array) -> Tuple[Any, Any]:
  """(tree, shardings): ``init(rng)`` materialised shard by shard (jit with out_shardings), boxes stripped."""
  _, shardings = abstract_sharded(init, mesh, rules)
  with mesh_context(mesh, rules):
    tree = jax.jit(lambda r: strip_boxes(init(r)), out_shardings=shardings)(rng)
  return tree, shardings


def param_count(abstract_params: Any) -> int:
  """Number of parameters in a (possibly abstract, possibly boxed) params tree."""
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(strip_boxes(abstract_params))))
