r"""Ahead-of-time compile of the train step for a TPU topology, on any machine with libtpu installed.

  python -m skip_t5x.aot --topology=v5e:16x16 --gin_file=gin/runs/pretrain.gin \
      --gin_file=gin/models/skip_1p7b.gin --gin.DISPATCH="'gather'"

Builds the train step exactly as `skip_t5x.train` does (same gin bindings of `train`: model, dataset batch and
lengths, mesh, optimizer, microbatches) over the devices of a TPU topology description
(jax.experimental.topologies), compiles it with abstract inputs only (nothing is materialised), and prints
per-chip memory (arguments, outputs, temporaries, total against the chip's HBM), FLOPs per step and the sharding
of the largest arrays. Exits 1 with a clear message when the mesh does not fit the topology or the program does
not fit in HBM (2 on bad flags or gin). See docs/aot.md.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
import time
from typing import Any, Dict, Optional, Sequence

from absl import flags
import jax
import jax.extend
import numpy as np

from skip_t5x.aot_report import (COMPILER_OOM, HBM_PER_CORE_BYTES, UNITS, AotError, AotReport, DoesNotFitError,
                                 format_gib, format_report, largest_arrays, matmul_flops)


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


@dataclasses.dataclass
class TrainBindings:
  """The arguments gin binds for `skip_t5x.training.train` that shape the train step."""

  model: Any
  dataset: Any
  mesh: Any
  optimizer: Any
  train_steps: int
  microbatches: int


def train_bindings() -> TrainBindings:
  """Evaluates the parsed gin config's bindings of `train` (the model is built, nothing is trained)."""
  import gin  # pylint: disable=g-import-not-at-top

  from skip_t5x import optimizers  # pylint: disable=g-import-not-at-top
  from skip_t5x import partitioning  # pylint: disable=g-import-not-at-top
  from skip_t5x import training  # pylint: disable=g-import-not-at-top

  defaults = {name: p.default for name, p in inspect.signature(training.train).parameters.items()}
  bound = {**defaults, **gin.get_bindings(training.train)}
  missing = [name for name in ("model", "dataset", "train_steps") if bound.get(name) is gin.REQUIRED]
  if missing:
    raise AotError(f"the gin config does not bind train.{missing[0]} (missing: {missing}); "
                   "pass the same --gin_file(s) as for skip_t5x.train")
  return TrainBindings(
      model=bound["model"],
      dataset=bound["dataset"],
      mesh=bound.get("mesh") or partitioning.MeshConfig(),
      optimizer=bound.get("optimizer") or optimizers.OptimizerConfig(),
      train_steps=int(bound["train_steps"]),
      microbatches=int(bound.get("microbatches") or 1),
  )


def abstract_batch(dataset, mesh, rules) -> Dict[str, jax.ShapeDtypeStruct]:
  """ShapeDtypeStructs of one global batch as the input pipeline would produce it ([batch, length] int32)."""
  from skip_t5x import input_pipeline  # pylint: disable=g-import-not-at-top
  from skip_t5x import partitioning  # pylint: disable=g-import-not-at-top

  lengths = input_pipeline.feature_converter(dataset).get_model_feature_lengths(dict(dataset.task_feature_lengths))
  sharding = partitioning.batch_sharding(mesh, rules)
  return {name: jax.ShapeDtypeStruct((dataset.batch_size, int(length)), np.int32, sharding=sharding)
          for name, length in sorted(lengths.items())}


def _analytic_flops_per_step(model, dataset) -> Optional[float]:
  """skip_t5x.flops' training FLOPs per token (at the routing's target density) x tokens per step."""
  from skip_t5x import flops as flops_lib  # pylint: disable=g-import-not-at-top

  config = getattr(model, "config", None)
  if config is None:
    return None
  per_token = flops_lib.flops_per_token(config, seq_len=dataset.sequence_length, training=True)["total"]
  return float(per_token) * dataset.batch_size * dataset.sequence_length


def compile_train_step(topology: str, bindings: Optional[TrainBindings] = None, top_arrays: int = 8,
                       compile: bool = True) -> AotReport:  # pylint: disable=redefined-builtin
  """Compiles the configured train step for `topology`; the gin config must already be parsed.

  With compile=False the step is only traced (seconds, even at paper scale): the report then has the program's
  matmul FLOPs and the state's shardings but no memory figures.
  """
  from skip_t5x import optimizers  # pylint: disable=g-import-not-at-top
  from skip_t5x import partitioning  # pylint: disable=g-import-not-at-top
  from skip_t5x import trainer as trainer_lib  # pylint: disable=g-import-not-at-top

  bindings = bindings or train_bindings()
  model, dataset = bindings.model, bindings.dataset
  config = getattr(model, "config", None)
  if config is not None and hasattr(config, "validate"):
    config.validate()
  dataset.validate()
  bindings.optimizer.validate()
  devices = topology_devices(topology)
  try:
    mesh = partitioning.create_mesh(bindings.mesh, devices=devices)
  except ValueError as e:
    raise AotError(f"the mesh does not fit topology {topology} ({len(devices)} devices): {e}") from e
  rules = bindings.mesh.rules()
  try:
    partitioning.check_batch_divisible(dataset.batch_size, mesh, bindings.microbatches)
  except ValueError as e:
    raise AotError(f"on topology {topology} with mesh {dict(mesh.shape)}: {e}") from e
  tx, schedule = optimizers.make_optimizer(bindings.optimizer, bindings.train_steps)
  init_shapes = {"decoder_input_tokens": (partitioning.data_parallel_size(mesh), dataset.sequence_length)}
  abstract_state, shardings = trainer_lib.abstract_train_state(model, tx, mesh, rules, init_shapes)
  step = trainer_lib.jit_train_step(trainer_lib.make_train_step(model, tx, schedule, bindings.microbatches),
                                    shardings, mesh, rules)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  key = jax.eval_shape(lambda: jax.random.key(0))
  rng = jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=replicated)
  batch = abstract_batch(dataset, mesh, rules)
  start = time.monotonic()  # lowering (tracing) + compiling
  with trainer_lib.mesh_context(mesh, rules):
    traced = step.trace(abstract_state, batch, rng)
    program_flops = matmul_flops(traced.jaxpr.jaxpr)
    compiled = None
    try:
      if compile:
        compiled = traced.lower().compile()
    except Exception as e:  # JaxRuntimeError; the TPU compiler refuses programs that do not fit in HBM
      if "RESOURCE_EXHAUSTED" not in str(e):
        raise
      match = COMPILER_OOM.search(str(e))
      required = int(float(match.group(1)) * UNITS[match.group(2)]) if match else None
      raise DoesNotFitError(
          f"the train step does not fit on {topology} (mesh {dict(mesh.shape)}, {devices[0].device_kind}, "
          f"{format_gib(hbm_bytes_per_device(devices[0]))} HBM per chip): {str(e).splitlines()[0]}",
          required_bytes=required) from e
  seconds = time.monotonic() - start
  memory = compiled.memory_analysis() if compiled else None
  cost = compiled.cost_analysis() if compiled else None
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  size = lambda name: int(getattr(memory, name)) if memory else None  # noqa: E731
  return AotReport(
      topology=topology,
      num_chips=len(devices),
      device_kind=devices[0].device_kind,
      hbm_bytes=hbm_bytes_per_device(devices[0]),
      mesh={k: int(v) for k, v in mesh.shape.items()},
      batch_size=int(dataset.batch_size),
      sequence_length=int(dataset.sequence_length),
      num_params=trainer_lib.param_count(abstract_state.params),
      argument_bytes=size("argument_size_in_bytes"),
      output_bytes=size("output_size_in_bytes"),
      alias_bytes=size("alias_size_in_bytes"),
      temp_bytes=size("temp_size_in_bytes"),
      generated_code_bytes=size("generated_code_size_in_bytes"),
      flops_per_chip=float(cost.get("flops", float("nan"))) if cost else None,
      program_flops_per_step=program_flops,
      analytic_flops_per_step=_analytic_flops_per_step(model, dataset),
      compile_seconds=seconds,
      largest_arrays=largest_arrays(abstract_state, top_arrays),
  )


def run(topology: str, gin_files: Sequence[str], gin_bindings: Sequence[str] = (),
        gin_search_paths: Sequence[str] = (), top_arrays: int = 8,
        compile: bool = True) -> AotReport:  # pylint: disable=redefined-builtin
  """Parses the gin config as skip_t5x.train would and compiles its train step for `topology`.

  Raises GinConfigError / ValueError on a bad config, AotError when the mesh does not fit the topology, and
  DoesNotFitError (with the report when there is one) when the step does not fit in HBM.
  """
  import gin  # pylint: disable=g-import-not-at-top

  from skip_t5x import gin_utils  # pylint: disable=g-import-not-at-top
  from skip_t5x import train as train_lib  # pylint: disable=g-import-not-at-top

  train_lib.import_registrations()
  gin.clear_config()
  gin_utils.parse_gin(gin_files, gin_bindings, gin_search_paths,
                      extra_bindings={"MODEL_DIR": "/tmp/skip_t5x_aot_unused"}, finalize=False)
  report = compile_train_step(topology, top_arrays=top_arrays, compile=compile)
  report.gin_files = list(gin_files)
  report.gin_bindings = list(gin_bindings)
  if report.fits is False:
    raise DoesNotFitError(
        f"the train step needs {format_gib(report.total_bytes)} per chip but a {report.device_kind} chip has "
        f"{format_gib(report.hbm_bytes)}: shard more (MeshConfig fsdp/model), use remat, microbatches or a smaller "
        "batch", report=report)
  return report


def _define_flags() -> None:
  from skip_t5x import gin_utils  # pylint: disable=g-import-not-at-top

  gin_utils.define_flags()
  if "topology" not in flags.FLAGS:
    flags.DEFINE_string("topology", None, "TPU topology, e.g. v5e:16x16, v5e:2x2, v4:4x4x8.")
    flags.DEFINE_integer("top_arrays", 8, "How many of the largest train-state arrays to list.")
    flags.DEFINE_string("json_out", None, "Also write the report as JSON to this path.")
    flags.DEFINE_bool("compile", True, "Compile (memory figures); --nocompile only traces (FLOPs, shardings).")


def main(argv: Sequence[str]) -> None:
  from skip_t5x import gin_utils  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise SystemExit(f"error: unexpected arguments {argv[1:]}")
  fl = flags.FLAGS
  if not fl.topology:
    raise SystemExit("error: --topology is required, e.g. --topology=v5e:16x16")
  try:
    report = run(fl.topology, fl.gin_file, fl.gin_bindings, fl.gin_search_paths, fl.top_arrays, fl.compile)
  except (gin_utils.GinConfigError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except DoesNotFitError as e:
    if e.report is not None:
      print(format_report(e.report), flush=True)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except AotError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(format_report(report), flush=True)
  if fl.json_out:
    with open(fl.json_out, "w") as f:
      json.dump(report.to_json(), f, indent=1)


def console_entry() -> None:
  from skip_t5x import gin_utils  # pylint: disable=g-import-not-at-top

  _define_flags()
  gin_utils.run(main)


if __name__ == "__main__":
  console_entry()
