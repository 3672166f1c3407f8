"""Ahead-of-time compile of the train step for a TPU topology, on any machine with libtpu installed.

Builds the train program exactly as training does (`program.build_program` on the gin-bound TrainSpec) over the
devices of a TPU topology description (jax.experimental.topologies), compiles it with abstract inputs only (nothing is materialised), and prints
per-chip memory (arguments, outputs, temporaries, total against the chip's HBM), FLOPs per step and the sharding
of the largest arrays. Exits 1 with a clear message when the mesh does not fit the topology or the program does
not fit in HBM. The command is skip_t5x/aot.py; see docs/aot.md.
"""
from __future__ import annotations

import os
import time
from typing import Dict, Optional

import jax
import jax.extend
import numpy as np

from skip_t5x import parallel
from skip_t5x.model import flops as flops_lib
from skip_t5x.training import input_pipeline
from skip_t5x.training.program import TrainProgram, TrainSpec, build_program
from skip_t5x.training.aot_report import (COMPILER_OOM, HBM_PER_CORE_BYTES, UNITS, AotError, AotReport, DoesNotFitError,
                                 attention_implementations, format_gib, format_report, largest_arrays,
                                 matmul_flops)


def hbm_bytes_per_device(device) -> int:
  kind = device.device_kind
  if kind not in HBM_PER_CORE_BYTES:
    raise AotError(f"unknown HBM size for device kind {kind!r}; known: {sorted(HBM_PER_CORE_BYTES)}")
  return HBM_PER_CORE_BYTES[kind] * max(1, int(getattr(device, "num_cores", 1) or 1))


def topology_devices(topology: str) -> list:
  """The devices of a TPU topology description, e.g. 'v5e:16x16' (needs libtpu, not a TPU)."""
  try:
    import libtpu  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise AotError("AOT compilation for TPU needs libtpu: pip install -e '.[tpu]' (jax[tpu] brings it)") from e
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top

  # libtpu takes a machine-wide lock file unless told otherwise; compiling needs no TPU, so several
  # processes (AOT runs, a CPU job that loaded the TPU plugin) may share the library.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  try:
    return list(topologies.get_topology_desc(platform="tpu", topology_name=topology).devices)
  except Exception as e:  # jax raises JaxRuntimeError / ValueError with libtpu's text
    raise AotError(f"TPU topology {topology!r} is not available: {e}. Use GEN:AxB[xC] with a shape the "
                   "generation supports, e.g. v5e:2x2, v5e:16x16, v4:2x2x1, v5p:4x4x4") from e


def abstract_batch(dataset, mesh, rules) -> Dict[str, jax.ShapeDtypeStruct]:
  """ShapeDtypeStructs of one global batch as the input pipeline would produce it ([batch, length] int32)."""
  lengths = input_pipeline.feature_converter(dataset).get_model_feature_lengths(dict(dataset.task_feature_lengths))
  sharding = parallel.batch_sharding(mesh, rules)
  return {name: jax.ShapeDtypeStruct((dataset.batch_size, int(length)), np.int32, sharding=sharding)
          for name, length in sorted(lengths.items())}


def _analytic_flops_per_step(model, dataset) -> Optional[float]:
  """model/flops.py's training FLOPs per token (at what the dispatch computes) x tokens per step."""
  config = getattr(model, "config", None)
  if config is None:
    return None
  per_token = flops_lib.total_flops_per_token(config, dataset.sequence_length, training=True)
  return per_token * dataset.batch_size * dataset.sequence_length


def build_for_topology(topology: str, spec: TrainSpec) -> TrainProgram:
  """training's own `build_program` over the topology's devices; mesh / batch misfits become AotErrors."""
  devices = topology_devices(topology)
  try:
    return build_program(spec, devices=devices)
  except ValueError as e:
    if "mesh shape" in str(e):
      raise AotError(f"the mesh does not fit topology {topology} ({len(devices)} devices): {e}") from e
    if "BATCH_SIZE" in str(e):
      raise AotError(f"on topology {topology} ({len(devices)} devices): {e}") from e
    raise


def _compile(traced, topology: str, program: TrainProgram):
  """traced.lower().compile(), turning the TPU compiler's out-of-memory refusal into DoesNotFitError."""
  try:
    return traced.lower().compile()
  except Exception as e:  # JaxRuntimeError; the TPU compiler refuses programs that do not fit in HBM
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    match = COMPILER_OOM.search(str(e))
    required = int(float(match.group(1)) * UNITS[match.group(2)]) if match else None
    device = program.placement.mesh.devices.flat[0]
    raise DoesNotFitError(
        f"the train step does not fit on {topology} (mesh {dict(program.placement.mesh.shape)}, "
        f"{device.device_kind}, {format_gib(hbm_bytes_per_device(device))} HBM per chip): {str(e).splitlines()[0]}",
        required_bytes=required) from e


def compile_train_step(topology: str, spec: Optional[TrainSpec] = None, top_arrays: int = 8,
                       compile: bool = True) -> AotReport:  # pylint: disable=redefined-builtin
  """Compiles the configured train step for `topology`; the gin config must already be parsed.

  With compile=False the step is only traced (seconds, even at paper scale): the report then has the program's
  matmul FLOPs and the state's shardings but no memory figures.
  """
  spec = spec or TrainSpec()
  program = build_for_topology(topology, spec)
  mesh, rules = program.placement.mesh, program.placement.rules
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  key = jax.eval_shape(lambda: jax.random.key(0))
  rng = jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=replicated)
  batch = abstract_batch(spec.dataset, mesh, rules)
  start = time.monotonic()  # lowering (tracing) + compiling
  with program.placement.context():
    traced = program.step_fn.trace(program.abstract_state, batch, rng)
    program_flops = matmul_flops(traced.jaxpr.jaxpr)
    compiled = _compile(traced, topology, program) if compile else None
  seconds = time.monotonic() - start
  report = _report(topology, program, compiled, program_flops, seconds, top_arrays)
  report.attention = attention_implementations(traced.jaxpr.jaxpr)
  return report


def _report(topology: str, program: TrainProgram, compiled, program_flops: float, seconds: float,
            top_arrays: int) -> AotReport:
  memory = compiled.memory_analysis() if compiled else None
  cost = compiled.cost_analysis() if compiled else None
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  size = lambda name: int(getattr(memory, name)) if memory else None  # noqa: E731
  mesh, dataset = program.placement.mesh, program.spec.dataset
  device = mesh.devices.flat[0]
  return AotReport(
      topology=topology,
      num_chips=mesh.size,
      device_kind=device.device_kind,
      hbm_bytes=hbm_bytes_per_device(device),
      mesh={k: int(v) for k, v in mesh.shape.items()},
      batch_size=int(dataset.batch_size),
      sequence_length=int(dataset.sequence_length),
      num_params=program.num_params,
      argument_bytes=size("argument_size_in_bytes"),
      output_bytes=size("output_size_in_bytes"),
      alias_bytes=size("alias_size_in_bytes"),
      temp_bytes=size("temp_size_in_bytes"),
      generated_code_bytes=size("generated_code_size_in_bytes"),
      flops_per_chip=float(cost.get("flops", float("nan"))) if cost else None,
      program_flops_per_step=program_flops,
      analytic_flops_per_step=_analytic_flops_per_step(program.spec.model, dataset),
      compile_seconds=seconds,
      largest_arrays=largest_arrays(program.abstract_state, top_arrays),
  )
