"""Training losses of the decoder-only model: token cross entropy with z-loss, and the routers' budget losses."""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from skip_t5x.layers.routing import RoutingConfig


def cross_entropy_with_z_loss(
    logits: jax.Array, targets: jax.Array, z_loss: float, label_smoothing: float = 0.0
) -> tuple[jax.Array, jax.Array]:
  """Per-token cross entropy and z-loss. logits: [batch, length, vocab] float32; targets: [batch, length]."""
  vocab = logits.shape[-1]
  log_z = jax.nn.logsumexp(logits, axis=-1)  # [batch, length]
  log_probs = logits - log_z[..., None]
  on_value = 1.0 - label_smoothing
  off_value = label_smoothing / max(vocab - 1, 1)
  soft_targets = jax.nn.one_hot(targets, vocab) * (on_value - off_value) + off_value
  cross_entropy = -jnp.sum(soft_targets * log_probs, axis=-1)  # [batch, length]
  return cross_entropy, z_loss * jnp.square(log_z)


def routing_losses(routing_stats: Mapping[str, Mapping[str, jax.Array]], rc: RoutingConfig):
  """aux = lambda * sum_l (density_l - P)^2 (+ the same for argmax decisions), z = z_weight * mean_l z_l."""
  zero = jnp.zeros((), jnp.float32)
  if not routing_stats:
    return zero, zero, {}
  densities = jnp.stack([s["density"] for s in routing_stats.values()])  # [num_routed]
  z_losses = jnp.stack([s["z_loss"] for s in routing_stats.values()])
  aux = rc.aux_loss_weight * jnp.sum(jnp.square(densities - rc.target_density))
  argmax_densities = jnp.stack([s["argmax_density"] for s in routing_stats.values()])
  if rc.budget_argmax and rc.policy == "gumbel":
    aux = aux + rc.aux_loss_weight * jnp.sum(jnp.square(argmax_densities - rc.target_density))
  router_z = rc.z_loss_weight * jnp.mean(z_losses)
  metrics = {
      "router/aux_loss": aux,
      "router/z_loss": router_z,
      "router/density": jnp.mean(densities),
      "router/argmax_density": jnp.mean(argmax_densities),
      "router/overflow": jnp.mean(jnp.stack([s["overflow"] for s in routing_stats.values()])),
  }
  for name, s in routing_stats.items():
    metrics[f"router/density/{name}"] = s["density"]
    metrics[f"router/execute_prob/{name}"] = s["execute_prob"]
  return aux, router_z, metrics
