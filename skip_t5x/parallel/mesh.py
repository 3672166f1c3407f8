"""The device mesh and the logical axis rules.

The mesh has three named axes:
  * ``data``  - pure data parallelism (params replicated),
  * ``fsdp``  - data parallelism whose params and optimizer state are sharded (ZeRO-3 style),
  * ``model`` - tensor parallelism over heads / mlp / vocab.

Flax modules annotate params and activations with *logical* axis names (see docs/interfaces.md); the rules below
map them to mesh axes. Every jitted computation runs under ``mesh_context(mesh, rules)`` (``jax.set_mesh`` plus the
rules) so that ``nn.with_logical_constraint`` inside the model takes effect.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Optional, Sequence, Tuple

from absl import logging
import flax.linen as nn
import gin
import jax
from jax.sharding import AxisType, Mesh

MESH_AXES: Tuple[str, str, str] = ("data", "fsdp", "model")

LogicalRules = Sequence[Tuple[str, Any]]


def logical_axis_rules() -> Tuple[Tuple[str, Any], ...]:
  """Default mapping from the model's logical axis names to mesh axes.

  Flax picks, for every dimension, the first rule whose mesh axis is not yet used by another dimension of the same
  array; so activations [batch, length, embed] get batch on (data, fsdp) and leave embed replicated, while params
  [embed, mlp] get embed on fsdp and mlp on model.
  """
  return (
      ("batch", ("data", "fsdp")),
      ("length", None),
      ("embed", "fsdp"),
      ("mlp", "model"),
      ("heads", "model"),
      ("kv", None),
      ("vocab", "model"),
      ("unmodeled", None),
      ("layers", None),
  )


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Mesh shape (data, fsdp, model); exactly one entry may be -1, meaning 'all remaining devices'.

  ``logical_axis_rules``: None for ``logical_axis_rules()``, else a sequence of (logical_name, mesh_axes) pairs.
  """

  data: int = -1
  fsdp: int = 1
  model: int = 1
  logical_axis_rules: Optional[Tuple[Tuple[str, Any], ...]] = None

  @property
  def shape(self) -> Tuple[int, int, int]:
    return (self.data, self.fsdp, self.model)

  def rules(self) -> Tuple[Tuple[str, Any], ...]:
    if self.logical_axis_rules is None:
      return logical_axis_rules()
    return tuple((str(name), axes) for name, axes in self.logical_axis_rules)


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> Tuple[int, ...]:
  """Fills a single -1 entry so that prod(shape) == num_devices; raises ValueError naming the shape otherwise."""
  shape = tuple(int(s) for s in shape)
  named = dict(zip(MESH_AXES, shape))
  if len(shape) != len(MESH_AXES):
    raise ValueError(f"mesh shape {shape} must have {len(MESH_AXES)} entries for axes {MESH_AXES}")
  if shape.count(-1) > 1:
    raise ValueError(f"mesh shape {named}: at most one axis may be -1")
  bad = {k: v for k, v in named.items() if v == 0 or v < -1}
  if bad:
    raise ValueError(f"mesh shape {named}: axis sizes must be positive or -1, got {bad}")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise ValueError(
          f"mesh shape {named}: the fixed axes (product {known}) do not divide the device count {num_devices}")
    shape = tuple(num_devices // known if s == -1 else s for s in shape)
  elif known != num_devices:
    raise ValueError(
        f"mesh shape {named} has {known} devices but {num_devices} devices are available; "
        "use -1 on one axis to fill the rest")
  return shape


def create_mesh(config: MeshConfig, devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """Builds a (data, fsdp, model) mesh over ``devices`` (default: all global devices)."""
  devices = list(jax.devices() if devices is None else devices)
  shape = resolve_mesh_shape(config.shape, len(devices))
  mesh = jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)
  logging.info("Mesh %s over %d devices", dict(mesh.shape), len(devices))
  return mesh


def data_parallel_size(mesh: Mesh) -> int:
  """Number of batch shards: product of the data and fsdp axes."""
  return mesh.shape["data"] * mesh.shape["fsdp"]


def check_batch_divisible(batch_size: int, mesh: Mesh, microbatches: int = 1) -> None:
  """Raises ValueError when the (micro)batch cannot be split evenly over the data-parallel axes or hosts."""
  if batch_size <= 0:
    raise ValueError(f"BATCH_SIZE={batch_size} must be positive")
  if microbatches <= 0 or batch_size % microbatches:
    raise ValueError(f"BATCH_SIZE={batch_size} is not divisible into microbatches={microbatches}")
  shards = data_parallel_size(mesh)
  micro = batch_size // microbatches
  if micro % shards:
    raise ValueError(
        f"BATCH_SIZE={batch_size} (microbatch {micro}) is not divisible by the data-parallel mesh size {shards} "
        f"(data={mesh.shape['data']} x fsdp={mesh.shape['fsdp']})")
  if batch_size % jax.process_count():
    raise ValueError(f"BATCH_SIZE={batch_size} is not divisible by the process count {jax.process_count()}")


@contextlib.contextmanager
def mesh_context(mesh: Mesh, rules: LogicalRules):
  """``jax.set_mesh`` plus flax logical axis rules: every trace/compile/run of sharded code goes inside this."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    yield
