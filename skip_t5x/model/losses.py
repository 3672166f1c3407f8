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
  """(aux, z, metrics): the routers' budget and z-losses, per policy.

  gumbel / threshold / expert_choice: aux = lambda * sum_l (density_l - P)^2 (+ the same for argmax decisions).
  early_exit: decisions are monotone over depth, so only the mean density over routed modules is held at P:
  aux = lambda * L * (mean_l density_l - P)^2 (the factor L gives each router the per-layer gradient scale).
  random: no router, no aux loss. expert_choice's predictor adds predictor_loss_weight * its mean BCE to aux.
  """
  zero = jnp.zeros((), jnp.float32)
  if not routing_stats:
    return zero, zero, {}
  stack = lambda key: jnp.stack([s[key] for s in routing_stats.values()])  # [num_routed]
  densities, argmax_densities = stack("density"), stack("argmax_density")
  gaps = [densities]
  if rc.budget_argmax and rc.policy in ("gumbel", "early_exit"):
    gaps.append(argmax_densities)
  if rc.policy == "random":
    aux = zero
  elif rc.policy == "early_exit":
    aux = rc.aux_loss_weight * len(densities) * sum(jnp.square(jnp.mean(d) - rc.target_density) for d in gaps)
  else:
    aux = rc.aux_loss_weight * sum(jnp.sum(jnp.square(d - rc.target_density)) for d in gaps)
  router_z = rc.z_loss_weight * jnp.mean(stack("z_loss"))
  metrics = {
      "router/density": jnp.mean(densities),
      "router/argmax_density": jnp.mean(argmax_densities),
      "router/overflow": jnp.mean(stack("overflow")),
  }
  if all("predictor_loss" in s for s in routing_stats.values()):
    predictor_loss = jnp.mean(stack("predictor_loss"))
    aux = aux + rc.predictor_loss_weight * predictor_loss
    metrics["router/predictor_loss"] = predictor_loss
    metrics["router/predictor_agreement"] = jnp.mean(stack("predictor_agreement"))
  metrics.update({"router/aux_loss": aux, "router/z_loss": router_z})
  for name, s in routing_stats.items():
    metrics[f"router/density/{name}"] = s["density"]
    metrics[f"router/execute_prob/{name}"] = s["execute_prob"]
  return aux, router_z, metrics
