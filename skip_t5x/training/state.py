"""The train state (step, params, optimizer state) and its sharded, allocation-free or materialised creation."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Tuple

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from skip_t5x import parallel


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training (and is checkpointed)."""

  step: jax.Array  # [] int32: number of train steps taken (= batches consumed)
  params: Any
  opt_state: Any


def _init_fn(model, tx: optax.GradientTransformation, input_shapes: Mapping[str, Tuple[int, ...]]) -> Callable:
  """rng -> boxed TrainState. Built inside one function so optimizer state inherits the params' logical axes."""

  def init(rng: jax.Array) -> TrainState:
    variables = model.get_initial_variables(rng, input_shapes=dict(input_shapes))
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  return init


def abstract_train_state(model, tx, mesh: Mesh, rules, input_shapes) -> Tuple[TrainState, TrainState]:
  """(abstract state with shardings attached, shardings) without allocating anything."""
  return parallel.abstract_sharded(_init_fn(model, tx, input_shapes), mesh, rules)


def init_train_state(model, tx, mesh: Mesh, rules, input_shapes, rng: jax.Array) -> Tuple[TrainState, TrainState]:
  """Sharded initialisation: each device materialises only its own shard (jit with out_shardings).

  Returns (state, shardings); ``state`` holds unboxed jax.Arrays laid out as ``shardings``.
  """
  return parallel.sharded_init(_init_fn(model, tx, input_shapes), mesh, rules, rng)
