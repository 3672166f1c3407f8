"""The AOT compile report: per-chip memory, FLOPs and the largest arrays of a train step, and its formatting.

Used by skip_t5x.aot (which compiles) and bench/aot_table.py (which tabulates reports).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Dict, List, Optional

import jax
import jax.extend
import numpy as np

GiB = 1024**3

# HBM per TensorCore by device kind; a device spans `device.num_cores` cores (v5p megacore: 2).
HBM_PER_CORE_BYTES = {
    "TPU v2": 8 * GiB,
    "TPU v3": 16 * GiB,
    "TPU v4": 16 * GiB,
    "TPU v5 lite": 16 * GiB,
    "TPU v5": int(47.5 * GiB),
    "TPU v5p": int(47.5 * GiB),
    "TPU v6 lite": 32 * GiB,
}


class AotError(RuntimeError):
  """The configuration cannot be compiled for the topology (or does not fit); the message says why."""


class DoesNotFitError(AotError):
  """The train step needs more HBM per chip than the topology's chips have.

  ``report`` is set when the program compiled (memory_analysis over HBM); when the TPU compiler itself refused
  (RESOURCE_EXHAUSTED), ``required_bytes`` is what it said the program needs, if it said.
  """

  def __init__(self, message: str, report: Optional["AotReport"] = None, required_bytes: Optional[int] = None):
    super().__init__(message)
    self.report = report
    self.required_bytes = required_bytes


COMPILER_OOM = re.compile(r"required for [^(]*\(([\d.]+)([KMGT])\) exceeds available HBM \(([\d.]+)([KMGT])\)")
UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclasses.dataclass(frozen=True)
class ArrayInfo:
  """One array of the train state: its path, global shape and dtype, mesh sharding and bytes per chip."""

  path: str
  shape: tuple
  dtype: str
  spec: str
  bytes_per_chip: int


@dataclasses.dataclass
class AotReport:
  """What the compiler says about one train step on one topology (memory figures are per chip)."""

  topology: str
  num_chips: int
  device_kind: str
  hbm_bytes: int
  mesh: Dict[str, int]
  batch_size: int
  sequence_length: int
  num_params: int
  argument_bytes: Optional[int]  # memory figures and XLA's FLOPs are None when traced but not compiled
  output_bytes: Optional[int]
  alias_bytes: Optional[int]
  temp_bytes: Optional[int]
  generated_code_bytes: Optional[int]
  flops_per_chip: Optional[float]
  program_flops_per_step: float
  analytic_flops_per_step: Optional[float]
  compile_seconds: float
  largest_arrays: List[ArrayInfo]
  attention: List[str] = dataclasses.field(default_factory=list)  # implementations in the step, e.g. ['splash']
  gin_files: List[str] = dataclasses.field(default_factory=list)
  gin_bindings: List[str] = dataclasses.field(default_factory=list)

  @property
  def compiled(self) -> bool:
    return self.argument_bytes is not None

  @property
  def total_bytes(self) -> Optional[int]:
    """Peak HBM per chip: arguments + outputs not aliased to (donated) arguments + temporaries + code."""
    if not self.compiled:
      return None
    return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes + self.generated_code_bytes

  @property
  def fits(self) -> Optional[bool]:
    return None if not self.compiled else self.total_bytes <= self.hbm_bytes

  @property
  def flops_per_step(self) -> Optional[float]:
    """XLA's FLOPs of one step over all chips (its cost analysis is per chip and counts a loop body once)."""
    return None if self.flops_per_chip is None else self.flops_per_chip * self.num_chips

  def to_json(self) -> Dict[str, Any]:
    out = dataclasses.asdict(self)
    out.update(total_bytes=self.total_bytes, fits=self.fits, flops_per_step=self.flops_per_step,
               compiled=self.compiled)
    return out


def sub_jaxprs(value) -> List[Any]:
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    return [value.jaxpr]
  if isinstance(value, jax.extend.core.Jaxpr):
    return [value]
  if isinstance(value, (tuple, list)):
    return [j for v in value for j in sub_jaxprs(v)]
  return []


def matmul_flops(jaxpr) -> float:
  """FLOPs of every dot_general in a jaxpr (2 x output elements x contracted size), over the global shapes.

  Nested jaxprs are counted as executed: a scan's body `length` times (XLA's cost analysis counts a loop body
  once, which hides all but one layer of a scanned model), remat bodies where they are recomputed, the most
  expensive branch of a cond; while loops (unknown trip count) once.
  """
  total = 0.0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general":
      (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
      lhs_shape = eqn.invars[0].aval.shape
      contracted = math.prod(lhs_shape[d] for d in lhs_contracting)
      total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * contracted
      continue
    if "branches" in eqn.params:
      total += max(matmul_flops(j) for j in sub_jaxprs(eqn.params["branches"]))
      continue
    inner = sum(matmul_flops(j) for value in eqn.params.values() for j in sub_jaxprs(value))
    total += inner * (eqn.params["length"] if eqn.primitive.name == "scan" else 1)
  return total


ATTENTION_SCOPE = re.compile(r"\b(splash|cudnn|blockwise|dense_scores)_attention\b")


def attention_implementations(jaxpr) -> List[str]:
  """The attention implementations a jaxpr runs, from the named scopes layers/attention.py puts around each."""
  found = set()
  for eqn in jaxpr.eqns:
    found.update(ATTENTION_SCOPE.findall(str(eqn.source_info.name_stack)))
    for value in eqn.params.values():
      for sub in sub_jaxprs(value):
        found.update(attention_implementations(sub))
  return sorted(found)


def format_spec(spec) -> str:
  return "P(" + ", ".join(repr(s) if s is not None else "None" for s in spec) + ")"


def largest_arrays(abstract_state, top: int) -> List[ArrayInfo]:
  infos = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(abstract_state):
    if not hasattr(leaf, "shape") or leaf.sharding is None:
      continue
    shard_shape = leaf.sharding.shard_shape(leaf.shape)
    infos.append(ArrayInfo(
        path=jax.tree_util.keystr(path, simple=True, separator="/"),
        shape=tuple(int(d) for d in leaf.shape),
        dtype=str(np.dtype(leaf.dtype)),
        spec=format_spec(leaf.sharding.spec),
        bytes_per_chip=int(math.prod(shard_shape) * np.dtype(leaf.dtype).itemsize),
    ))
  infos.sort(key=lambda a: a.bytes_per_chip, reverse=True)
  return infos[:top]


def format_gib(n: float) -> str:
  """Bytes as GiB, or MiB below 1 GiB."""
  return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / 2**20:.1f} MiB"


def format_report(report: AotReport) -> str:
  verb = "compiled" if report.compiled else "traced (not compiled)"
  lines = [
      f"AOT for {report.topology}: {report.num_chips} x {report.device_kind}, {format_gib(report.hbm_bytes)} HBM each; "
      f"{verb} in {report.compile_seconds:.1f} s",
      f"mesh {report.mesh}; batch {report.batch_size} x {report.sequence_length} tokens; "
      f"{report.num_params / 1e6:.1f}M params; attention: {', '.join(report.attention) or 'none'}",
  ]
  if report.compiled:
    lines += [
        "memory per chip:",
        f"  arguments       {format_gib(report.argument_bytes)}",
        f"  outputs         {format_gib(report.output_bytes)} "
        f"({format_gib(report.alias_bytes)} aliased to donated arguments)",
        f"  temporaries     {format_gib(report.temp_bytes)}",
        f"  generated code  {format_gib(report.generated_code_bytes)}",
        f"  total           {format_gib(report.total_bytes)} of {format_gib(report.hbm_bytes)}: "
        + ("fits" if report.fits else "DOES NOT FIT"),
    ]
  flops = f"FLOPs per step: {report.program_flops_per_step:.4g} in the program's matmuls"
  if report.flops_per_step is not None:
    flops += f", {report.flops_per_step:.4g} by XLA ({report.flops_per_chip:.4g} per chip, loop bodies once)"
  if report.analytic_flops_per_step:
    flops += f", {report.analytic_flops_per_step:.4g} analytic"
  lines += [flops, "largest arrays (per chip):"]
  for a in report.largest_arrays:
    lines.append(f"  {a.path:<48} {str(list(a.shape)):<22} {a.dtype:<9} {a.spec:<28} "
                 f"{a.bytes_per_chip / 2**20:9.1f} MiB")
  return "\n".join(lines)


