"""Device mesh, logical axis rules, shardings and multi-host start-up.

The mesh has three named axes:
  * ``data``  - pure data parallelism (params replicated),
  * ``fsdp``  - data parallelism whose params and optimizer state are sharded (ZeRO-3 style),
  * ``model`` - tensor parallelism over heads / mlp / vocab.

Flax modules annotate params and activations with *logical* axis names (see docs/interfaces.md); the rules below
map them to mesh axes. Every jitted computation runs under ``with jax.set_mesh(mesh)`` so that
``nn.with_logical_constraint`` inside the model takes effect.

Public API (used by train.py, eval.py and infer.py):
  * ``MeshConfig`` (gin) and ``create_mesh(config)``: the mesh, validated against the device count.
  * ``logical_axis_rules()``: the default rules.
  * ``initialize_distributed()``: jax.distributed start-up when more than one process is asked for.
  * ``tree_shardings(abstract_tree, mesh, rules)``: NamedShardings for a tree of (boxed) abstract arrays.
  * ``batch_sharding(mesh, rules)`` / ``make_global_batch(local_batch, mesh, rules)``: per-host numpy batches to
    global jax.Arrays.
  * ``check_batch_divisible(batch_size, mesh)``.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Mapping, Optional, Sequence, Tuple

from absl import logging
import flax.linen as nn
import gin
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

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


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DistributedConfig:
  """Multi-process settings; empty values fall back to the environment variables in brackets.

  coordinator_address [SKIP_T5X_COORDINATOR], num_processes [SKIP_T5X_NUM_PROCESSES],
  process_id [SKIP_T5X_PROCESS_ID]. Timeouts are in seconds.
  """

  coordinator_address: Optional[str] = None
  num_processes: Optional[int] = None
  process_id: Optional[int] = None
  initialization_timeout: int = 300
  heartbeat_timeout: int = 100


def initialize_distributed(config: Optional[DistributedConfig] = None,
                           env: Optional[Mapping[str, str]] = None) -> bool:
  """Calls jax.distributed.initialize when more than one process is requested; returns whether it did.

  Must run before anything touches jax devices. With a single process (the default) this is a no-op. On TPU pods
  jax can discover peers itself: set SKIP_T5X_NUM_PROCESSES and leave the address empty.
  """
  config = config or DistributedConfig()
  env = os.environ if env is None else env
  address = config.coordinator_address or env.get("SKIP_T5X_COORDINATOR") or None
  num = config.num_processes or (int(env["SKIP_T5X_NUM_PROCESSES"]) if env.get("SKIP_T5X_NUM_PROCESSES") else None)
  pid = config.process_id
  if pid is None and env.get("SKIP_T5X_PROCESS_ID"):
    pid = int(env["SKIP_T5X_PROCESS_ID"])
  if not num or num <= 1:
    return False
  if pid is not None and not 0 <= pid < num:
    raise ValueError(f"process_id={pid} is outside [0, num_processes={num})")
  logging.info("jax.distributed.initialize(coordinator=%s, num_processes=%d, process_id=%s)", address, num, pid)
  jax.distributed.initialize(
      coordinator_address=address,
      num_processes=num,
      process_id=pid,
      initialization_timeout=config.initialization_timeout,
      heartbeat_timeout_seconds=config.heartbeat_timeout,
  )
  return True
