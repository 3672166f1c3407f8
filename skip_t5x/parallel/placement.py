"""The one set-up every command shares: a validated model laid out on a validated mesh, nothing allocated yet.

train, eval, infer and aot all start with ``place_model``: it validates the model config, checks that the model's
vocabulary holds the data's ids, builds the mesh (over real or AOT topology devices), checks that the batch splits
over the data-parallel axes and hosts, and gives the abstract sharded params that restores and compiles target.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

import jax
from jax.sharding import Mesh

from skip_t5x.parallel.mesh import (LogicalRules, MeshConfig, check_batch_divisible, create_mesh,
                                    data_parallel_size, mesh_context)
from skip_t5x.parallel.sharding import abstract_sharded


@dataclasses.dataclass(frozen=True)
class Placement:
  """A model (anything with ``config`` and ``get_initial_variables``) on a mesh with its logical axis rules."""

  model: Any
  mesh: Mesh
  rules: LogicalRules
  sequence_length: Optional[int]  # None until known (evaluation learns it from the data)

  def with_length(self, sequence_length: int) -> "Placement":
    return dataclasses.replace(self, sequence_length=int(sequence_length))

  @property
  def init_shapes(self) -> Dict[str, Tuple[int, int]]:
    """Input shapes that initialise the model: one row per batch shard, the full sequence length."""
    return {"decoder_input_tokens": (data_parallel_size(self.mesh), self.sequence_length)}

  def context(self):
    """``with placement.context():`` every trace, compile and run of sharded code."""
    return mesh_context(self.mesh, self.rules)

  def init_params(self, rng: jax.Array) -> Any:
    """Boxed params (nn.Partitioned leaves) of the model for `init_shapes`."""
    return self.model.get_initial_variables(rng, input_shapes=self.init_shapes)["params"]

  def abstract_params(self) -> Any:
    """ShapeDtypeStructs of the params with the shardings training uses; allocates nothing."""
    return abstract_sharded(self.init_params, self.mesh, self.rules)[0]


def place_model(model: Any, mesh_config: Optional[MeshConfig], sequence_length: Optional[int], *,
                batch_size: Optional[int] = None, microbatches: int = 1, min_vocab_size: Optional[int] = None,
                devices: Optional[Sequence[Any]] = None) -> Placement:
  """Validates and lays out `model`; raises ValueError naming the offending value before anything compiles.

  min_vocab_size: the data's vocabulary size, which the model's embedding must hold. devices: default all global
  devices; AOT passes the devices of a TPU topology description.
  """
  config = getattr(model, "config", None)
  if config is not None and hasattr(config, "validate"):
    config.validate()
  if sequence_length is not None and (not isinstance(sequence_length, int) or sequence_length <= 0):
    raise ValueError(f"sequence length {sequence_length!r} must be a positive integer")
  vocab_size = getattr(config, "vocab_size", None)
  if min_vocab_size is not None and vocab_size is not None and vocab_size < min_vocab_size:
    raise ValueError(f"VOCAB_SIZE={vocab_size} is smaller than the data's vocabulary ({min_vocab_size} ids); "
                     f"set VOCAB_SIZE >= {min_vocab_size}")
  mesh_config = mesh_config or MeshConfig()
  mesh = create_mesh(mesh_config, devices=devices)
  if batch_size is not None:
    check_batch_divisible(batch_size, mesh, microbatches)
  return Placement(model=model, mesh=mesh, rules=mesh_config.rules(), sequence_length=sequence_length)
