"""Routers and their configuration: per-token binary decisions (skip, execute) and their auxiliary losses.

A router reads the pre-norm hidden state of a routed module (cast to float32) and produces two logits per token:
index 0 = skip, index 1 = execute. The policies that turn logits into decisions (gumbel, threshold, early_exit,
random, expert_choice with its causal predictor) live in policies.py; `decide` and `Decision` are re-exported here.

Capacity (gather dispatch) is per row: ``C_row = ceil(capacity_factor * P * real_length_row)``, so a sequence's
decisions do not depend on how much padding follows it; buffers are sized by the static ``capacity(length)``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from skip_t5x.layers.policies import EXECUTE, EXECUTE_ALL, SKIP, Decision, RouteContext, decide  # noqa: F401

ROUTED_CHOICES = ("layer", "attention", "ffn", "none")
DISPATCH_CHOICES = ("masked", "gather")
POLICY_CHOICES = ("gumbel", "threshold", "early_exit", "random", "expert_choice")
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
  seed: int = 0  # 'random' policy: hashed with (layer, position, token id) into evaluation decisions
  # 'expert_choice': hidden width of the causal predictor of top-C membership (an MLP on a stop-gradient copy of
  # the router input) that decides at evaluation and decoding; 0 = no predictor (top-C at evaluation, no decoding)
  predictor_dim: int = 64
  predictor_loss_weight: float = 0.1  # weight of the predictor's binary cross entropy toward top-C membership
  # Elastic inference (evaluation/calibration.py): the skip ratio to run at, and one threshold on the gap
  # (execute - skip logit, or the policy's score) per routed module, in routed-module order. Eval/infer time only.
  inference_skip_ratio: Optional[float] = None
  gap_thresholds: Optional[Tuple[float, ...]] = None

  @property
  def target_density(self) -> float:
    """P: the fraction of tokens that should execute each routed module."""
    return 1.0 - self.skip_ratio

  @property
  def capacity_density(self) -> float:
    """The density gather capacity is sized for: P, or 1 - inference_skip_ratio when running elastically."""
    return self.target_density if self.inference_skip_ratio is None else 1.0 - self.inference_skip_ratio

  @property
  def has_router(self) -> bool:
    return self.policy != "random"

  @property
  def has_predictor(self) -> bool:
    return self.policy == "expert_choice" and self.predictor_dim > 0

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
    if not isinstance(self.predictor_dim, int) or self.predictor_dim < 0:
      bad("predictor_dim", self.predictor_dim, "must be an integer >= 0")
    if self.predictor_loss_weight < 0:
      bad("predictor_loss_weight", self.predictor_loss_weight, "must be >= 0")
    if self.inference_skip_ratio is not None and not 0.0 <= self.inference_skip_ratio < 1.0:
      bad("inference_skip_ratio", self.inference_skip_ratio, "must be None or in [0, 1)")
    if self.gap_thresholds is not None and num_layers is not None:
      routed = sum(self.is_layer_routed(i, num_layers) for i in range(num_layers))
      if len(self.gap_thresholds) != routed:
        bad("gap_thresholds", self.gap_thresholds, f"needs one threshold per routed module ({routed})")
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
    """Static capacity (buffer size) of gather dispatch: ceil(capacity_factor * P * length), in [1, length]."""
    c = math.ceil(self.capacity_factor * self.capacity_density * length - 1e-9)
    return int(min(max(c, 1), length))

  def row_capacity(self, real_lengths: jax.Array, length: int) -> jax.Array:
    """Per-row capacity ceil(capacity_factor * P * real_length) [batch] int32, from the rows' real lengths.

    Computed exactly as `capacity` (a table over 0..length, float64 on the host), so a row with no padding gets
    `capacity(length)` and the same row padded longer gets the same capacity.
    """
    table = np.array([0] + [self.capacity(n) for n in range(1, length + 1)], np.int32)  # [length + 1]
    index = jnp.clip(jnp.asarray(real_lengths).astype(jnp.int32), 0, length)
    return jnp.asarray(table)[index]


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


def router_z_loss(logits: jax.Array, token_mask: jax.Array) -> jax.Array:
  """Mean over real tokens of logsumexp(logits)^2 (keeps router logits small)."""
  z = jax.nn.logsumexp(logits, axis=-1) ** 2  # [batch, length]
  return masked_mean(z, token_mask)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  mask = mask.astype(jnp.float32)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)
