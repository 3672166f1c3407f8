"""Learning-rate schedules and optimizers."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from skip_t5x.training import optimizers


def test_rsqrt_schedule_is_constant_then_inverse_sqrt():
  schedule = optimizers.rsqrt_schedule(0.01, warmup_steps=100)
  for step, expected in [(0, 0.01), (50, 0.01), (100, 0.01), (400, 0.005), (10_000, 0.001)]:
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)


def test_cosine_schedule_warms_up_linearly_and_ends_at_ratio():
  config = optimizers.OptimizerConfig(schedule="cosine", peak_learning_rate=1.0, warmup_steps=10,
                                      end_lr_ratio=0.1)
  schedule = optimizers.make_schedule(config, train_steps=110)
  assert float(schedule(5)) == pytest.approx(0.5)
  assert float(schedule(10)) == pytest.approx(1.0)
  assert float(schedule(60)) == pytest.approx(0.1 + 0.9 * 0.5, rel=1e-5)
  assert float(schedule(110)) == pytest.approx(0.1)


@pytest.mark.parametrize("field, value, message", [
    ("name", "sgd", "OptimizerConfig.name='sgd'"),
    ("schedule", "linear", "OptimizerConfig.schedule='linear'"),
    ("peak_learning_rate", 0.0, "peak_learning_rate=0.0"),
])
def test_bad_optimizer_config_is_named(field, value, message):
  with pytest.raises(ValueError, match=message):
    optimizers.make_optimizer(optimizers.OptimizerConfig(**{field: value}), 10)


@pytest.mark.parametrize("name", ["adafactor", "adamw"])
def test_optimizers_minimise_a_quadratic(name):
  config = optimizers.OptimizerConfig(name=name, peak_learning_rate=0.1, warmup_steps=1, schedule="constant",
                                      adafactor_min_dim_size_to_factor=4)
  tx, _ = optimizers.make_optimizer(config, 100)
  target = jnp.arange(32.0).reshape(4, 8) / 10.0
  params = {"w": jnp.ones((4, 8)), "b": 2 * jnp.ones((8,))}  # non-zero: Adafactor steps scale with rms(param)
  loss = lambda p: jnp.sum((p["w"] - target) ** 2) + jnp.sum((p["b"] - 1.0) ** 2)
  state = tx.init(params)
  start = float(loss(params))
  step = jax.jit(lambda p, s: (lambda g: (lambda u, s2: (optax.apply_updates(p, u), s2))(*tx.update(g, s, p)))(
      jax.grad(loss)(p)))
  for _ in range(60):
    params, state = step(params, state)
  assert float(loss(params)) < 0.05 * start


def test_gradient_clipping_scales_the_gradient_the_optimizer_sees():
  config = optimizers.OptimizerConfig(name="adamw", peak_learning_rate=1.0, schedule="constant", b1=0.9,
                                      clip_grad_norm=1e-3)
  tx, _ = optimizers.make_optimizer(config, 10)
  params = {"w": jnp.zeros(3)}
  grads = {"w": jnp.array([3.0, 4.0, 0.0])}  # global norm 5
  _, state = tx.update(grads, tx.init(params), params)
  adam_state = state[1][0]  # chain(clip, adamw) -> adamw's first moment after one step: (1 - b1) * clipped grad
  np.testing.assert_allclose(np.asarray(adam_state.mu["w"]), 0.1 * np.array([3.0, 4.0, 0.0]) * 1e-3 / 5,
                             rtol=1e-5)
