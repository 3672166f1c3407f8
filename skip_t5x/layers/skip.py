"""SkipLayer: a Router (or none, for 'random') plus dispatch around any sublayer, with per-module routing metrics.

    y = x + gate * f(x)   for tokens that execute
    y = x                 for tokens that skip (identity on the residual stream)

The sublayer is a function ``fn(x_sub, rows, keep) -> delta`` (see dispatch.py; `keep` [batch, length] is the full
execute mask, which attention needs to drop skipped keys). Returned metrics:
realized density (straight-through: forward value = fraction executed, gradient = that of the mean execute
probability), the same for the deterministic argmax decisions, mean execute probability, router z-loss and the
fraction of tokens dropped by capacity, and the decisions themselves (``execute`` [batch, length] bool, capacity
applied) and their deterministic scores (``gap`` [batch, length], for elastic calibration): the model returns them
with the stats, so callers never parse variable paths. Mixture-of-Depths ('expert_choice' with a predictor) adds the
predictor's loss and its agreement with top-C; early exit returns the updated ``exited`` masks.

Gather capacity is per row, from the row's real length (see RoutingConfig.row_capacity); during decoding the cache
holds each row's capacity, set from its prompt + decode length (decoding.py).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from skip_t5x.layers import dispatch
from skip_t5x.layers.policies import RouteContext
from skip_t5x.layers.routing import Router, RoutingConfig, decide, masked_mean, router_z_loss

RoutedFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


class DepthPredictor(nn.Module):
  """Mixture-of-Depths' causal predictor: an MLP on a stop-gradient copy of the router input -> one logit per token.

  Trained with binary cross entropy toward top-C membership; its gradient never reaches the model.
  """

  hidden: int

  @nn.compact
  def __call__(self, router_input: jax.Array) -> jax.Array:
    x = jax.lax.stop_gradient(router_input.astype(jnp.float32))  # [batch, length, embed]
    dense = lambda features, axes, name: nn.Dense(
        features, kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), axes[1:]), name=name)
    # A small FFN: its hidden axis is 'mlp' (an axis name may occur only once per array under the sharding rules)
    hidden = nn.silu(dense(self.hidden, ("embed", "mlp"), "hidden")(x))  # [batch, length, hidden]
    return dense(1, ("mlp", "unmodeled"), "out")(hidden)[..., 0]  # [batch, length]


class SkipLayer(nn.Module):
  """Routes each token to execute or skip `fn`."""

  config: RoutingConfig

  @nn.compact
  def __call__(
      self,
      x: jax.Array,
      router_input: jax.Array,
      fn: RoutedFn,
      token_mask: jax.Array,
      *,
      deterministic: bool,
      decode: bool = False,
      context: Optional[RouteContext] = None,
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """x: [batch, length, embed] residual stream; router_input: its normalized form; token_mask: [batch, length]."""
    cfg = self.config
    context = RouteContext() if context is None else context
    if decode and cfg.policy == "expert_choice" and not cfg.has_predictor:
      raise ValueError(
          "routing policy 'expert_choice' without a predictor (predictor_dim=0) picks the top tokens of a whole "
          "sequence (non-causal) and cannot be decoded incrementally; set predictor_dim > 0 or use another policy")
    length = x.shape[1]
    token_mask = token_mask.astype(bool)
    row_capacity = self._row_capacity(token_mask, length, decode)  # [batch]
    context = dataclasses.replace(context, row_capacity=row_capacity)
    logits = Router(name="router")(router_input) if cfg.has_router else None  # [batch, length, 2]
    predictor_logit = DepthPredictor(cfg.predictor_dim, name="predictor")(router_input) if cfg.has_predictor else None
    needs_rng = not deterministic and cfg.policy in ("gumbel", "early_exit", "random")
    rng = self.make_rng("gumbel") if needs_rng else None
    decision = decide(logits, cfg, deterministic=deterministic, token_mask=token_mask, rng=rng, context=context,
                      predictor_logit=predictor_logit)

    if cfg.dispatch == "gather" and decode:
      keep = self._decode_capacity(decision.execute, row_capacity, self.has_variable("cache", "executed_count"))
    elif cfg.dispatch == "gather":
      keep = dispatch.apply_capacity(decision.execute, row_capacity[:, None])
    else:
      keep = decision.execute

    fn_keep = lambda x_sub, rows: fn(x_sub, rows, keep)
    if cfg.dispatch == "gather" and not decode:
      y = dispatch.gather_dispatch(x, keep, decision.gate, fn_keep, cfg.capacity(length))
    else:
      y = dispatch.masked_dispatch(x, keep, decision.gate, fn_keep)
    stats = self._stats(decision, keep, logits, token_mask)
    if cfg.has_predictor and not decode:
      stats.update(predictor_stats(predictor_logit, decision.top_c, token_mask))
    if context.exited is not None:  # early exit: a token that skips here skips every later routed module
      argmax_kept = keep if deterministic else decision.argmax_execute
      stats["exited"] = context.exited | (token_mask[..., None] & ~jnp.stack([keep, argmax_kept], axis=-1))
    return y, stats

  def _stats(self, decision, keep, logits, token_mask) -> dict[str, jax.Array]:
    keep_f = keep.astype(jnp.float32)
    soft_grad = decision.gate - jax.lax.stop_gradient(decision.gate)  # 0 forward, router gradient backward
    zero = jnp.zeros((), jnp.float32)
    return {
        "density": masked_mean(keep_f + soft_grad, token_mask),
        "execute_prob": masked_mean(decision.execute_prob, token_mask),
        "z_loss": zero if logits is None else router_z_loss(logits, token_mask),
        "overflow": masked_mean((decision.execute & ~keep).astype(jnp.float32), token_mask),
        # forward: fraction the argmax decisions execute; backward: gradient of the mean execute probability
        "argmax_density": masked_mean(
            decision.argmax_execute.astype(jnp.float32)
            + (decision.execute_prob - jax.lax.stop_gradient(decision.execute_prob)), token_mask),
        "execute": keep,  # [batch, length] bool: the decisions, not a scalar
        "gap": decision.gap,  # [batch, length] float32: the deterministic score (elastic calibration)
    }

  def _row_capacity(self, token_mask: jax.Array, length: int, decode: bool) -> jax.Array:
    """[batch] int32: tokens each row may execute. Decoding keeps each row's capacity in the cache."""
    if decode:
      batch = token_mask.shape[0]
      capacity = self.variable("cache", "capacity",
                               lambda: jnp.full((batch,), self.config.capacity(length), jnp.int32))
      return capacity.value
    return self.config.row_capacity(jnp.sum(token_mask, axis=-1), length)

  def _decode_capacity(self, execute: jax.Array, row_capacity: jax.Array, decoding_step: bool) -> jax.Array:
    """Gather capacity during incremental decoding: a per-sequence counter of executed tokens in the cache.

    The cache's per-row capacity is set for each row's prompt + decode length (decoding.init_cache), which is
    what a full forward over that row (padding marked in its token mask) computes, so decoding reproduces the
    full forward's position-ordered overflow.
    """
    count = self.variable("cache", "executed_count", jnp.zeros, execute.shape[:1], jnp.int32)
    running = count.value[:, None] + jnp.cumsum(execute.astype(jnp.int32), axis=-1)  # [batch, length]
    keep = execute & (running <= row_capacity[:, None])
    if decoding_step:
      count.value = count.value + jnp.sum(keep, axis=-1, dtype=jnp.int32)
    return keep


def predictor_stats(predictor_logit: jax.Array, top_c: jax.Array, token_mask: jax.Array) -> dict[str, jax.Array]:
  """Binary cross entropy of the predictor toward top-C membership, and how often their decisions agree."""
  target = jax.lax.stop_gradient(top_c.astype(jnp.float32))  # [batch, length]
  bce = jax.nn.softplus(predictor_logit) - predictor_logit * target
  agree = ((predictor_logit > 0) == top_c).astype(jnp.float32)
  return {"predictor_loss": masked_mean(bce, token_mask), "predictor_agreement": masked_mean(agree, token_mask)}
