"""Routers: per-token binary decisions (skip, execute) and their auxiliary losses.

A router reads the pre-norm hidden state of a routed module (cast to float32) and produces two logits per token:
index 0 = skip, index 1 = execute. Policies turn logits into hard decisions plus a differentiable gate:

- ``gumbel`` (default): straight-through Gumbel-softmax while training (hard one-hot forward, soft backward, with a
  temperature), argmax when deterministic (evaluation and decoding).
- ``threshold``: execute when p(execute) > threshold; straight-through gate.
- ``expert_choice``: each sequence executes its top-C tokens by p(execute) (Mixture-of-Depths style). A token's
  decision depends on later tokens, so this policy is NOT causal and cannot be decoded incrementally.

The gate equals 1.0 in the forward pass for executed tokens (``hard + soft - stop_gradient(soft)``) and carries the
router's gradient in the backward pass; routed modules compute ``y = x + gate * f(x)``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

SKIP, EXECUTE = 0, 1
ROUTED_CHOICES = ("layer", "attention", "ffn", "none")
DISPATCH_CHOICES = ("masked", "gather")
POLICY_CHOICES = ("gumbel", "threshold", "expert_choice")
LAYER_PATTERNS = ("all", "every_other")


@dataclasses.dataclass(frozen=True)
class RoutingConfig:
  """How a decoder learns to skip. Every field is a gin knob (see gin/models/)."""

  skip_ratio: float = 0.5  # target fraction of tokens that skip each routed module
  routed: str = "layer"  # 'layer' (attention + FFN together), 'attention', 'ffn' or 'none'
  routed_layers: Union[str, Sequence[int]] = "all"  # 'all', 'every_other' (odd layers) or explicit indices
  dispatch: str = "masked"  # 'masked' (compute all, select) or 'gather' (capacity-bounded gather/scatter)
  policy: str = "gumbel"
  capacity_factor: float = 1.0  # gather dispatch: C = ceil(capacity_factor * (1 - skip_ratio) * length)
  temperature: float = 1.0  # Gumbel-softmax temperature
  threshold: float = 0.5  # 'threshold' policy: execute when p(execute) > threshold
  aux_loss_weight: float = 0.1  # weight of sum_l (density_l - target_density)^2 (0.01 let AdamW drift 0.1 off)
  z_loss_weight: float = 1e-3  # weight of the router z-loss mean(logsumexp(logits)^2)
  drop_skipped_keys: bool = False  # attention: skipped tokens are also removed from the keys (MoD-style)
  # 'gumbel': also hold the deterministic (argmax) decisions used at evaluation to the budget. Sampled decisions can
  # meet the budget with every p(execute) near P while argmax then executes all or nothing; this term closes that gap.
  budget_argmax: bool = True

  @property
  def target_density(self) -> float:
    """P: the fraction of tokens that should execute each routed module."""
    return 1.0 - self.skip_ratio

  @property
  def enabled(self) -> bool:
    """Routing off ('none', or SKIP_RATIO 0) builds no routers at all: exactly the dense model."""
    return self.routed != "none" and self.skip_ratio > 0

  def validate(self, num_layers: int | None = None) -> "RoutingConfig":
    """Raises ValueError naming the offending field and value; returns self."""
    def bad(field, value, why):
      raise ValueError(f"RoutingConfig.{field}={value!r}: {why}")

    if not isinstance(self.skip_ratio, (int, float)) or not 0.0 <= self.skip_ratio < 1.0:
      bad("skip_ratio", self.skip_ratio, "must be in [0, 1) (SKIP_RATIO is the fraction of tokens that skip)")
    if self.routed not in ROUTED_CHOICES:
      bad("routed", self.routed, f"must be one of {ROUTED_CHOICES}")
    if self.dispatch not in DISPATCH_CHOICES:
      bad("dispatch", self.dispatch, f"must be one of {DISPATCH_CHOICES}")
    if self.policy not in POLICY_CHOICES:
      bad("policy", self.policy, f"must be one of {POLICY_CHOICES}")
    if not self.capacity_factor > 0:
      bad("capacity_factor", self.capacity_factor, "must be > 0")
    if not self.temperature > 0:
      bad("temperature", self.temperature, "must be > 0")
    if not 0.0 < self.threshold < 1.0:
      bad("threshold", self.threshold, "must be in (0, 1)")
    if self.aux_loss_weight < 0 or self.z_loss_weight < 0:
      bad("aux_loss_weight/z_loss_weight", (self.aux_loss_weight, self.z_loss_weight), "must be >= 0")
    if isinstance(self.routed_layers, str):
      if self.routed_layers not in LAYER_PATTERNS:
        bad("routed_layers", self.routed_layers, f"must be one of {LAYER_PATTERNS} or a list of layer indices")
    else:
      layers = list(self.routed_layers)
      if any(not isinstance(i, int) for i in layers):
        bad("routed_layers", self.routed_layers, "explicit layers must be integers")
      if num_layers is not None and any(not 0 <= i < num_layers for i in layers):
        bad("routed_layers", self.routed_layers, f"indices must be in [0, {num_layers})")
    return self

  def is_layer_routed(self, layer: int, num_layers: int) -> bool:
    """Whether layer `layer` (0-based) carries routers."""
    if not self.enabled:
      return False
    if self.routed_layers == "all":
      return True
    if self.routed_layers == "every_other":
      return layer % 2 == 1
    return layer in tuple(self.routed_layers)

  def capacity(self, length: int) -> int:
    """Per-sequence capacity of gather dispatch: ceil(capacity_factor * P * length), clipped to [1, length]."""
    c = math.ceil(self.capacity_factor * self.target_density * length - 1e-9)
    return int(min(max(c, 1), length))


class Router(nn.Module):
  """Two float32 logits per token: (skip, execute). Params have logical axes ('embed', 'unmodeled')."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)  # [batch, length, embed]
    kernel = self.param(
        "kernel",
        nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02), ("embed", "unmodeled")),
        (x.shape[-1], 2),
        jnp.float32,
    )
    bias = self.param(
        "bias",
        nn.with_logical_partitioning(_execute_bias_init, ("unmodeled",)),
        (2,),
        jnp.float32,
    )
    return jnp.einsum("bte,ec->btc", x, kernel) + bias  # [batch, length, 2]


def _execute_bias_init(key, shape, dtype=jnp.float32):
  """Start every router preferring to execute (logit gap +1), so training starts from the dense model."""
  del key
  return jnp.zeros(shape, dtype).at[EXECUTE].set(1.0)


@dataclasses.dataclass
class Decision:
  """Result of routing one module for a batch of sequences."""

  execute: jax.Array  # [batch, length] bool: the token runs the module
  gate: jax.Array  # [batch, length] float32: 1.0 forward where executed; carries router gradients
  execute_prob: jax.Array  # [batch, length] float32: softmax(logits)[..., EXECUTE]
  argmax_execute: jax.Array  # [batch, length] bool: the deterministic decision (what evaluation would do)


def decide(
    logits: jax.Array,
    config: RoutingConfig,
    *,
    deterministic: bool,
    token_mask: jax.Array,
    rng: jax.Array | None = None,
) -> Decision:
  """Turns router logits [batch, length, 2] into per-token decisions under `config.policy`.

  Padding tokens (token_mask == 0) never execute.
  """
  probs = jax.nn.softmax(logits, axis=-1)  # [batch, length, 2]
  p_exec = probs[..., EXECUTE]
  token_mask = token_mask.astype(bool)

  if config.policy == "gumbel":
    if deterministic:
      soft = probs
      hard_exec = logits[..., EXECUTE] > logits[..., SKIP]
    else:
      if rng is None:
        raise ValueError("the 'gumbel' routing policy needs a 'gumbel' rng stream while training")
      noise = jax.random.gumbel(rng, logits.shape, jnp.float32)
      soft = jax.nn.softmax((logits + noise) / config.temperature, axis=-1)
      hard_exec = soft[..., EXECUTE] > soft[..., SKIP]
    soft_exec = soft[..., EXECUTE]
  elif config.policy == "threshold":
    soft_exec = p_exec
    hard_exec = p_exec > config.threshold
  else:  # expert_choice: top-C per sequence (non-causal)
    soft_exec = p_exec
    capacity = config.capacity(logits.shape[1])
    scores = jnp.where(token_mask, p_exec, -1.0)
    _, top = jax.lax.top_k(scores, capacity)  # [batch, capacity]
    hard_exec = jax.vmap(lambda t: jnp.zeros(scores.shape[1], bool).at[t].set(True))(top)

  hard_exec = hard_exec & token_mask
  hard = hard_exec.astype(jnp.float32)
  gate = hard + (soft_exec - jax.lax.stop_gradient(soft_exec))  # exactly == hard in the forward pass
  argmax_exec = hard_exec if config.policy != "gumbel" else (logits[..., EXECUTE] > logits[..., SKIP]) & token_mask
  return Decision(execute=hard_exec, gate=gate, execute_prob=p_exec, argmax_execute=argmax_exec)


def router_z_loss(logits: jax.Array, token_mask: jax.Array) -> jax.Array:
  """Mean over real tokens of logsumexp(logits)^2 (keeps router logits small)."""
  z = jax.nn.logsumexp(logits, axis=-1) ** 2  # [batch, length]
  return masked_mean(z, token_mask)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  mask = mask.astype(jnp.float32)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)
