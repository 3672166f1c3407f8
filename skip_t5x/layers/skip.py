"""SkipLayer: a Router plus dispatch around any sublayer, with per-module routing metrics.

    y = x + gate * f(x)   for tokens that execute
    y = x                 for tokens that skip (identity on the residual stream)

The sublayer is a function ``fn(x_sub, rows, keep) -> delta`` (see dispatch.py; `keep` [batch, length] is the full
execute mask, which attention needs to drop skipped keys). Returned metrics:
realized density (straight-through: forward value = fraction executed, gradient = that of the mean execute
probability), the same for the deterministic argmax decisions, mean execute probability, router z-loss and the
fraction of tokens dropped by capacity, and the decisions themselves (``execute`` [batch, length] bool, capacity
applied): the model returns them with the stats, so callers never parse variable paths.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from skip_t5x.layers import dispatch
from skip_t5x.layers.routing import Router, RoutingConfig, decide, masked_mean, router_z_loss

RoutedFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


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
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """x: [batch, length, embed] residual stream; router_input: its normalized form; token_mask: [batch, length]."""
    cfg = self.config
    decoding_step = decode and self.has_variable("cache", "executed_count")
    if decode and cfg.policy == "expert_choice":
      raise ValueError(
          "routing policy 'expert_choice' picks the top tokens of a whole sequence (non-causal) and cannot be "
          "decoded incrementally; use policy 'gumbel' or 'threshold' for generation")
    logits = Router(name="router")(router_input)  # [batch, length, 2]
    rng = None if deterministic or cfg.policy != "gumbel" else self.make_rng("gumbel")
    decision = decide(logits, cfg, deterministic=deterministic, token_mask=token_mask, rng=rng)
    length = x.shape[1]

    if cfg.dispatch == "gather" and decode:
      keep = self._decode_capacity(decision.execute, length, decoding_step)
    elif cfg.dispatch == "gather":
      keep = dispatch.apply_capacity(decision.execute, cfg.capacity(length))
    else:
      keep = decision.execute

    fn_keep = lambda x_sub, rows: fn(x_sub, rows, keep)
    if cfg.dispatch == "gather" and not decode:
      y = dispatch.gather_dispatch(x, keep, decision.gate, fn_keep, cfg.capacity(length))
    else:
      y = dispatch.masked_dispatch(x, keep, decision.gate, fn_keep)

    keep_f = keep.astype(jnp.float32)
    soft_grad = decision.gate - jax.lax.stop_gradient(decision.gate)  # 0 forward, router gradient backward
    stats = {
        "density": masked_mean(keep_f + soft_grad, token_mask),
        "execute_prob": masked_mean(decision.execute_prob, token_mask),
        "z_loss": router_z_loss(logits, token_mask),
        "overflow": masked_mean((decision.execute & ~keep).astype(jnp.float32), token_mask),
        # forward: fraction the argmax decisions execute; backward: gradient of the mean execute probability
        "argmax_density": masked_mean(
            decision.argmax_execute.astype(jnp.float32)
            + (decision.execute_prob - jax.lax.stop_gradient(decision.execute_prob)), token_mask),
    }
    stats["execute"] = keep  # [batch, length] bool: the decisions, not a scalar
    return y, stats

  def _decode_capacity(self, execute: jax.Array, length: int, decoding_step: bool) -> jax.Array:
    """Gather capacity during incremental decoding: a per-sequence counter of executed tokens in the cache.

    The cache is created by a first call over the full decode length, which fixes C exactly as a full forward over
    that length would, so decoding reproduces the full forward's position-ordered overflow.
    """
    count = self.variable("cache", "executed_count", jnp.zeros, execute.shape[:1], jnp.int32)
    capacity = self.variable("cache", "capacity", lambda: jnp.array(self.config.capacity(length), jnp.int32))
    running = count.value[:, None] + jnp.cumsum(execute.astype(jnp.int32), axis=-1)  # [batch, length]
    keep = execute & (running <= capacity.value)
    if decoding_step:
      count.value = count.value + jnp.sum(keep, axis=-1, dtype=jnp.int32)
    return keep
