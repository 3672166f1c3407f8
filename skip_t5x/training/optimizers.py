"""Optimizers and learning-rate schedules (optax), configured with gin through ``OptimizerConfig``.

Defaults follow the paper's setup: Adafactor with a constant learning rate for ``warmup_steps`` followed by an
inverse-square-root decay, ``lr(step) = peak * sqrt(warmup / max(step, warmup))``. AdamW and a linear-warmup cosine
schedule are options. Global-norm gradient clipping precedes the optimizer.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import gin
import jax
import jax.numpy as jnp
import optax

SCHEDULES = ("rsqrt", "cosine", "constant")
OPTIMIZERS = ("adafactor", "adamw")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Optimizer + schedule knobs.

  name: 'adafactor' (default) or 'adamw'.
  schedule: 'rsqrt' (constant warmup then 1/sqrt decay), 'cosine' (linear warmup then cosine to end_lr_ratio * peak)
    or 'constant'.
  decay_steps: length of the cosine schedule (warmup included); None means the run's TRAIN_STEPS.
  clip_grad_norm: global-norm clipping threshold, None or 0 to disable.
  weight_decay: decoupled weight decay (AdamW) or Adafactor's weight_decay_rate; not applied to 1-D params.
  """

  name: str = "adafactor"
  peak_learning_rate: float = 1e-2
  schedule: str = "rsqrt"
  warmup_steps: int = 10_000
  decay_steps: Optional[int] = None
  end_lr_ratio: float = 0.1
  clip_grad_norm: Optional[float] = 1.0
  weight_decay: float = 0.0
  # AdamW.
  b1: float = 0.9
  b2: float = 0.95
  eps: float = 1e-8
  # Adafactor.
  adafactor_decay_rate: float = 0.8
  adafactor_clipping_threshold: Optional[float] = 1.0
  adafactor_momentum: Optional[float] = None
  adafactor_min_dim_size_to_factor: int = 128

  def validate(self) -> None:
    if self.name not in OPTIMIZERS:
      raise ValueError(f"OptimizerConfig.name={self.name!r} must be one of {OPTIMIZERS}")
    if self.schedule not in SCHEDULES:
      raise ValueError(f"OptimizerConfig.schedule={self.schedule!r} must be one of {SCHEDULES}")
    if not self.peak_learning_rate > 0:
      raise ValueError(f"OptimizerConfig.peak_learning_rate={self.peak_learning_rate!r} must be > 0")
    if self.warmup_steps < 0:
      raise ValueError(f"OptimizerConfig.warmup_steps={self.warmup_steps!r} must be >= 0")
    if self.clip_grad_norm is not None and self.clip_grad_norm < 0:
      raise ValueError(f"OptimizerConfig.clip_grad_norm={self.clip_grad_norm!r} must be >= 0 or None")


def rsqrt_schedule(peak: float, warmup_steps: int) -> optax.Schedule:
  """Constant ``peak`` for the first ``warmup_steps`` steps, then ``peak * sqrt(warmup_steps / step)``."""
  warmup = max(int(warmup_steps), 1)

  def schedule(step):
    step = jnp.maximum(jnp.asarray(step, jnp.float32), float(warmup))
    return peak * jnp.sqrt(warmup / step)

  return schedule


def make_schedule(config: OptimizerConfig, train_steps: int) -> optax.Schedule:
  """The learning-rate schedule as a function of the optimizer step."""
  if config.schedule == "rsqrt":
    return rsqrt_schedule(config.peak_learning_rate, config.warmup_steps)
  if config.schedule == "cosine":
    decay = config.decay_steps or train_steps
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.peak_learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=max(decay, config.warmup_steps + 1),
        end_value=config.peak_learning_rate * config.end_lr_ratio,
    )
  return optax.constant_schedule(config.peak_learning_rate)


def _decay_mask(params):
  """Weight decay on matrices only (not on norm scales or biases)."""
  return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def make_optimizer(config: OptimizerConfig, train_steps: int) -> tuple[optax.GradientTransformation, Callable]:
  """Returns (optax transformation, schedule)."""
  config.validate()
  schedule = make_schedule(config, train_steps)
  parts = []
  if config.clip_grad_norm:
    parts.append(optax.clip_by_global_norm(config.clip_grad_norm))
  if config.name == "adafactor":
    parts.append(
        optax.adafactor(
            learning_rate=schedule,
            min_dim_size_to_factor=config.adafactor_min_dim_size_to_factor,
            decay_rate=config.adafactor_decay_rate,
            clipping_threshold=config.adafactor_clipping_threshold,
            momentum=config.adafactor_momentum,
            weight_decay_rate=config.weight_decay or None,
            weight_decay_mask=_decay_mask if config.weight_decay else None,
        ))
  else:
    parts.append(
        optax.adamw(
            learning_rate=schedule,
            b1=config.b1,
            b2=config.b2,
            eps=config.eps,
            weight_decay=config.weight_decay,
            mask=_decay_mask,
        ))
  return optax.chain(*parts), schedule
