"""TPU topology names ('v5e:16x16') and what Cloud TPU calls them (accelerator types, runtime versions).

The same topology string is understood by `skip_t5x.aot --topology=...` (jax.experimental.topologies), so an
experiment can be compiled ahead of time for exactly the slice it will be launched on.
"""
from __future__ import annotations

import dataclasses
import math
import re

_TOPOLOGY_RE = re.compile(r"^(v2|v3|v4|v5e|v5p|v6e):(\d+(?:x\d+){1,2})$")

# Per generation: how gcloud names a slice, whether it is counted in TensorCores (2 per chip) or chips, the
# default TPU VM runtime image, and the chips attached to each TPU VM host in a multi-host slice.
_GENERATIONS = {
    #  gen    (accelerator prefix, cores per chip, runtime version,       chips per host)
    "v2": ("v2", 2, "tpu-ubuntu2204-base", 4),
    "v3": ("v3", 2, "tpu-ubuntu2204-base", 4),
    "v4": ("v4", 2, "tpu-ubuntu2204-base", 4),
    "v5e": ("v5litepod", 1, "v2-alpha-tpuv5-lite", 4),
    "v5p": ("v5p", 2, "v2-alpha-tpuv5", 4),
    "v6e": ("v6e", 1, "v2-alpha-tpuv6e", 4),
}


@dataclasses.dataclass(frozen=True)
class Topology:
  """A TPU slice shape, e.g. Topology.parse('v5e:16x16') -> 256 chips of TPU v5e."""

  generation: str
  dims: tuple[int, ...]

  @classmethod
  def parse(cls, name: str) -> "Topology":
    match = _TOPOLOGY_RE.match(name or "")
    if not match:
      raise ValueError(f"TPU topology {name!r} is not of the form GEN:AxB[xC] with GEN in "
                       f"{sorted(_GENERATIONS)}, e.g. 'v5e:16x16' or 'v4:4x4x8'")
    dims = tuple(int(d) for d in match.group(2).split("x"))
    if any(d < 1 for d in dims):
      raise ValueError(f"TPU topology {name!r} has a zero dimension")
    return cls(match.group(1), dims)

  @property
  def name(self) -> str:
    return f"{self.generation}:{'x'.join(map(str, self.dims))}"

  @property
  def num_chips(self) -> int:
    return math.prod(self.dims)

  @property
  def accelerator_type(self) -> str:
    """gcloud's --accelerator-type, e.g. v5litepod-256 (v2/v3/v4/v5p count TensorCores: v4-512 is 256 chips)."""
    prefix, cores_per_chip, _, _ = _GENERATIONS[self.generation]
    return f"{prefix}-{self.num_chips * cores_per_chip}"

  @property
  def is_3d(self) -> bool:
    return len(self.dims) == 3

  @property
  def gcloud_shape_flags(self) -> list[str]:
    """How to ask gcloud for this exact slice: --type/--topology for 3-D tori, else --accelerator-type."""
    if self.is_3d:
      return [f"--type={self.generation}", f"--topology={'x'.join(map(str, self.dims))}"]
    return [f"--accelerator-type={self.accelerator_type}"]

  @property
  def default_runtime_version(self) -> str:
    return _GENERATIONS[self.generation][2]

  @property
  def num_hosts(self) -> int:
    """TPU VM workers of one slice (a single host for slices of up to 8 chips on v5e/v6e, 4 on others)."""
    per_host = _GENERATIONS[self.generation][3]
    if self.generation in ("v5e", "v6e") and self.num_chips <= 8:
      return 1
    return max(1, math.ceil(self.num_chips / per_host))
