"""Routing policies: how a routed module's scores become per-token execute decisions.

Every policy yields a deterministic *gap* per token (a score where larger means "execute") and a default *cut*:
at evaluation and decoding a token executes when ``gap > cut``. An elastic inference threshold (see
evaluation/calibration.py) replaces the cut, per routed module, to run a trained model at another skip ratio.
Against an elastic threshold the gap carries a tie-breaker, TIE_BREAK times a hash of (seed, layer, position,
token): equal hidden states (the same token at the first layer) have equal gaps, which a quantile cannot split;
the hash splits them deterministically and causally, so decoding still reproduces the full forward pass.

- ``gumbel``: gap = router logit gap (execute - skip), cut 0 (argmax). Training: straight-through Gumbel-softmax.
- ``threshold``: gap = router logit gap; executes when p(execute) > threshold (cut = logit(threshold)).
- ``early_exit``: as ``gumbel``, but a token that skipped an earlier routed module skips this one too (the
  decoder carries the ``exited`` masks from module to module).
- ``random``: no router. Training draws a uniform number per token from the 'gumbel' rng stream; evaluation and
  decoding hash (seed, layer, position, token id) into [0, 1). gap = that number, cut = SKIP_RATIO.
- ``expert_choice``: training executes each sequence's top-C tokens by p(execute) (Mixture-of-Depths; not causal).
  With a predictor (``predictor_dim > 0``) evaluation and decoding use the predictor's logit (gap, cut 0), which
  is causal; without one they keep the top-C and cannot be decoded incrementally.

The gate equals 1.0 in the forward pass for executed tokens (``hard + soft - stop_gradient(soft)``) and carries the
router's gradient in the backward pass; routed modules compute ``y = x + gate * f(x)``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp

SKIP, EXECUTE = 0, 1
EXECUTE_ALL = -1e30  # an elastic gap threshold below every score: every real token executes (skip ratio 0)
TIE_BREAK = 1e-3  # scale of the hashed tie-breaker added to gaps compared with elastic thresholds


@dataclasses.dataclass
class Decision:
  """Result of routing one module for a batch of sequences."""

  execute: jax.Array  # [batch, length] bool: the token runs the module (before gather capacity)
  gate: jax.Array  # [batch, length] float32: 1.0 forward where executed; carries router gradients
  execute_prob: jax.Array  # [batch, length] float32: softmax(logits)[..., EXECUTE]
  argmax_execute: jax.Array  # [batch, length] bool: the deterministic decision (what evaluation would do)
  gap: Optional[jax.Array] = None  # [batch, length] float32: the deterministic score (execute iff gap > cut)
  top_c: Optional[jax.Array] = None  # [batch, length] bool: expert_choice's top-C membership (predictor target)


@dataclasses.dataclass
class RouteContext:
  """Per-module side inputs of a routing decision beyond the router logits."""

  token_ids: Optional[jax.Array] = None  # [batch, length] int32: hashed by the 'random' policy
  positions: Optional[jax.Array] = None  # [batch, length] int32: hashed by the 'random' policy
  layer_index: Any = 0  # [] int32 (traced under nn.scan): hashed by the 'random' policy
  gap_threshold: Optional[jax.Array] = None  # [] float32: elastic cut on the gap; NaN/None = the policy's own
  row_capacity: Optional[jax.Array] = None  # [batch] int32: tokens each row may execute (expert_choice's C)
  exited: Optional[jax.Array] = None  # [batch, length, 2] bool: early exit (sampled, argmax decisions)


def _fmix32(h: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finaliser (uint32 arithmetic wraps)."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def hash_uniform(seed: int, layer_index: Any, positions: jax.Array, token_ids: jax.Array) -> jax.Array:
  """A deterministic number in [0, 1) per token from (seed, layer, position, token id). [batch, length] float32."""
  u32 = lambda v: jnp.asarray(v).astype(jnp.int32).astype(jnp.uint32)
  h = _fmix32(u32(seed) * jnp.uint32(0x9E3779B1) + jnp.uint32(0x7F4A7C15))
  h = _fmix32(h ^ (u32(layer_index) * jnp.uint32(0x85EBCA77)))
  h = _fmix32(h ^ (u32(positions) * jnp.uint32(0xC2B2AE3D)))
  h = _fmix32(h ^ (u32(token_ids) * jnp.uint32(0x27D4EB2F)))
  return (h >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def _cut(context: Optional[RouteContext], default: Any) -> jax.Array:
  """The elastic threshold when one is given (not NaN), else the policy's default cut."""
  default = jnp.asarray(default, jnp.float32)
  if context is None or context.gap_threshold is None:
    return default
  given = jnp.asarray(context.gap_threshold, jnp.float32)
  return jnp.where(jnp.isnan(given), default, given)


def _elastic(gap: jax.Array, default: jax.Array, config, context: Optional[RouteContext]):
  """(decision, score): `default` unless an elastic threshold is given, then score > threshold.

  score = gap + TIE_BREAK * hash(seed, layer, position, token) when the context has tokens, else the gap.
  """
  if context is None or context.gap_threshold is None:
    return default, gap
  score = gap
  if context.token_ids is not None and context.positions is not None:
    score = gap + TIE_BREAK * hash_uniform(config.seed + 1, context.layer_index, context.positions, context.token_ids)
  threshold = jnp.asarray(context.gap_threshold, jnp.float32)
  return jnp.where(jnp.isnan(threshold), default, score > threshold), score


def _logit_policy(logits, config, deterministic, rng, context):
  """gumbel / threshold / early_exit: (hard, soft, argmax, gap) from the router logits."""
  probs = jax.nn.softmax(logits, axis=-1)  # [batch, length, 2]
  p_exec = probs[..., EXECUTE]
  gap = logits[..., EXECUTE] - logits[..., SKIP]  # [batch, length]
  default = p_exec > config.threshold if config.policy == "threshold" else gap > 0
  argmax, gap = _elastic(gap, default, config, context)
  if deterministic:
    return argmax, p_exec, argmax, gap
  if config.policy == "threshold":
    return default, p_exec, default, gap
  if rng is None:
    raise ValueError(f"the {config.policy!r} routing policy needs a 'gumbel' rng stream while training")
  noise = jax.random.gumbel(rng, logits.shape, jnp.float32)
  soft = jax.nn.softmax((logits + noise) / config.temperature, axis=-1)
  return soft[..., EXECUTE] > soft[..., SKIP], soft[..., EXECUTE], argmax, gap


def _random_policy(shape, config, deterministic, rng, context):
  """random: (hard, soft, argmax, gap) with no router; the hash decides at evaluation."""
  if context is None or context.token_ids is None or context.positions is None:
    raise ValueError("the 'random' routing policy needs token ids and positions (RouteContext) to hash")
  gap = hash_uniform(config.seed, context.layer_index, context.positions, context.token_ids)  # [batch, length]
  argmax = gap > _cut(context, config.skip_ratio)
  soft = jnp.full(shape, config.target_density, jnp.float32)  # no gradient to carry
  if deterministic:
    return argmax, soft, argmax, gap
  if rng is None:
    raise ValueError("the 'random' routing policy needs a 'gumbel' rng stream while training")
  drawn = jax.random.uniform(rng, shape, jnp.float32)
  return drawn > config.skip_ratio, soft, argmax, gap


def top_c_membership(scores: jax.Array, token_mask: jax.Array, row_capacity: jax.Array, capacity: int) -> jax.Array:
  """Each row's `row_capacity` highest-scoring real tokens (at most `capacity`). [batch, length] bool."""
  masked = jnp.where(token_mask, scores, -jnp.inf)  # [batch, length]
  _, top = jax.lax.top_k(masked, capacity)  # [batch, capacity], best first

  def one_row(top_row, cap):
    within = jnp.arange(capacity) < cap
    return jnp.zeros(scores.shape[1], bool).at[top_row].set(within)

  return jax.vmap(one_row)(top, row_capacity) & token_mask


def _expert_choice(logits, config, deterministic, token_mask, context, predictor_logit):
  """expert_choice: top-C while training; the predictor (when given) decides when deterministic."""
  p_exec = jax.nn.softmax(logits, axis=-1)[..., EXECUTE]  # [batch, length]
  capacity = config.capacity(logits.shape[1])
  row_capacity = context.row_capacity if context is not None and context.row_capacity is not None else (
      jnp.full(logits.shape[:1], capacity, jnp.int32))
  top_c = top_c_membership(p_exec, token_mask, row_capacity, capacity)
  if predictor_logit is None:
    return top_c, p_exec, top_c, logits[..., EXECUTE] - logits[..., SKIP], top_c
  predicted, score = _elastic(predictor_logit, predictor_logit > 0, config, context)
  hard = predicted if deterministic else top_c
  return hard, p_exec, predicted, score, top_c


def decide(
    logits: Optional[jax.Array],
    config,
    *,
    deterministic: bool,
    token_mask: jax.Array,
    rng: Optional[jax.Array] = None,
    context: Optional[RouteContext] = None,
    predictor_logit: Optional[jax.Array] = None,
) -> Decision:
  """Per-token decisions under `config.policy` (a RoutingConfig) from router logits [batch, length, 2].

  `logits` is None for the router-free 'random' policy. Padding tokens (token_mask == 0) never execute; tokens
  marked in `context.exited` (early exit) never execute again.
  """
  token_mask = token_mask.astype(bool)
  top_c = None
  if config.policy == "random":
    hard, soft, argmax, gap = _random_policy(token_mask.shape, config, deterministic, rng, context)
  elif config.policy == "expert_choice":
    hard, soft, argmax, gap, top_c = _expert_choice(logits, config, deterministic, token_mask, context,
                                                    predictor_logit)
  else:
    hard, soft, argmax, gap = _logit_policy(logits, config, deterministic, rng, context)
  live = token_mask
  argmax_live = token_mask
  if context is not None and context.exited is not None:  # early exit: once skipped, always skipped
    live = token_mask & ~context.exited[..., 0]
    argmax_live = token_mask & ~context.exited[..., 1]
  hard = hard & live
  soft_grad = jnp.where(live, soft - jax.lax.stop_gradient(soft), 0.0)
  gate = hard.astype(jnp.float32) + soft_grad  # exactly == hard in the forward pass
  p_exec = soft if logits is None else jax.nn.softmax(logits, axis=-1)[..., EXECUTE]
  return Decision(execute=hard, gate=gate, execute_prob=p_exec, argmax_execute=argmax & argmax_live,
                  gap=gap.astype(jnp.float32), top_c=top_c)
