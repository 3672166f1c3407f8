"""The jitted train step.

The step is one ``jax.jit`` with the state donated. Gradients may be accumulated over microbatches (a
``lax.scan``; one optimizer update per step). A non-finite loss, gradient or updated parameter leaves params and
optimizer state untouched (``metrics['update_ok'] == 0``); the host decides whether to stop or keep going.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from skip_t5x import parallel
from skip_t5x.training.state import TrainState

Batch = Mapping[str, jax.Array]
Metrics = Dict[str, jax.Array]


def _split_microbatches(batch: Batch, microbatches: int) -> Batch:
  """[batch, ...] -> [microbatches, batch / microbatches, ...].

  Row r of microbatch m is global row r * microbatches + m: each device keeps its own rows (no communication).
  """

  def split(x):
    rows = x.shape[0] // microbatches
    x = x.reshape((rows, microbatches) + x.shape[1:])  # [rows, microbatches, ...]
    return jnp.swapaxes(x, 0, 1)  # [microbatches, rows, ...]

  return jax.tree.map(split, batch)


def _is_sum_metric(name: str) -> bool:
  return name.startswith("num_") or name.endswith("/num_tokens")


def make_train_step(model, tx: optax.GradientTransformation, schedule: Callable, microbatches: int = 1
                    ) -> Callable[[TrainState, Batch, jax.Array], Tuple[TrainState, Metrics]]:
  """Builds ``train_step(state, batch, rng) -> (state, metrics)`` (not yet jitted; see ``jit_train_step``)."""
  grad_fn = jax.value_and_grad(model.loss_fn, has_aux=True)

  def constrain(batch):
    return {k: nn.with_logical_constraint(v, ("batch", "length")) if v.ndim == 2 else v for k, v in batch.items()}

  def loss_and_grads(params, batch, rng):
    if microbatches == 1:
      (loss, metrics), grads = grad_fn(params, constrain(batch), rng)
      return loss, metrics, grads
    micro = _split_microbatches(batch, microbatches)

    def body(carry, xs):
      index, mb = xs
      (loss, metrics), grads = grad_fn(params, constrain(mb), jax.random.fold_in(rng, index))
      acc_grads, acc_loss, acc_metrics = carry
      acc_grads = jax.tree.map(jnp.add, acc_grads, grads)
      acc_metrics = jax.tree.map(jnp.add, acc_metrics, metrics)
      return (acc_grads, acc_loss + loss, acc_metrics), None

    zero_grads = jax.tree.map(jnp.zeros_like, params)
    first = jax.tree.map(lambda x: x[0], micro)
    metric_shapes = jax.eval_shape(lambda: grad_fn(params, first, rng)[0][1])
    zero_metrics = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metric_shapes)
    (grads, loss, metrics), _ = jax.lax.scan(
        body, (zero_grads, jnp.zeros((), jnp.float32), zero_metrics), (jnp.arange(microbatches), micro))
    grads = jax.tree.map(lambda g: g / microbatches, grads)
    metrics = {k: v if _is_sum_metric(k) else v / microbatches for k, v in metrics.items()}
    return loss / microbatches, metrics, grads

  def train_step(state: TrainState, batch: Batch, rng: jax.Array) -> Tuple[TrainState, Metrics]:
    step_rng = jax.random.fold_in(rng, state.step)
    loss, metrics, grads = loss_and_grads(state.params, batch, step_rng)
    updates, new_opt_state = tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    param_norm = optax.tree.norm(new_params)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(param_norm)
    keep = lambda new, old: jnp.where(ok, new, old)
    new_state = TrainState(
        step=state.step + 1,
        params=jax.tree.map(keep, new_params, state.params),
        opt_state=jax.tree.map(keep, new_opt_state, state.opt_state),
    )
    metrics = dict(metrics)
    metrics.update(
        loss=loss,
        grad_norm=grad_norm,
        param_norm=optax.tree.norm(new_state.params),
        learning_rate=jnp.asarray(schedule(state.step), jnp.float32),
        update_ok=ok.astype(jnp.float32),
    )
    return new_state, metrics

  return train_step


def jit_train_step(train_step: Callable, state_shardings: TrainState, mesh: Mesh, rules) -> Callable:
  """jax.jit with state donated and laid out as ``state_shardings``; batches sharded along (data, fsdp)."""
  batch_sharding = parallel.batch_sharding(mesh, rules)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.jit(
      train_step,
      in_shardings=(state_shardings, batch_sharding, replicated),
      out_shardings=(state_shardings, replicated),
      donate_argnums=(0,),
  )


def eval_loss_step(model) -> Callable[[Any, Batch], Metrics]:
  """``(params, batch) -> metrics`` of ``model.loss_fn`` without a dropout rng (deterministic routing)."""

  def step(params, batch):
    _, metrics = model.loss_fn(params, batch, None)
    return metrics

  return step


def host_metrics(metrics: Mapping[str, Any]) -> Dict[str, float]:
  """Device scalars -> python floats (one transfer)."""
  values = jax.device_get(dict(metrics))
  return {k: float(v) for k, v in values.items()}

