"""Router decisions, straight-through gates, capacity and config validation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skip_t5x.layers.routing import RoutingConfig, decide, router_z_loss


def _logits(exec_minus_skip):
  gap = jnp.asarray(exec_minus_skip, jnp.float32)
  return jnp.stack([jnp.zeros_like(gap), gap], axis=-1)  # [batch, length, 2]


def test_deterministic_gumbel_is_argmax_with_unit_gate():
  logits = _logits([[2.0, -1.0, 0.5, -3.0]])
  d = decide(logits, RoutingConfig(), deterministic=True, token_mask=jnp.ones((1, 4)))
  np.testing.assert_array_equal(d.execute, [[True, False, True, False]])
  np.testing.assert_allclose(d.gate, [[1.0, 0.0, 1.0, 0.0]], atol=1e-7)
  np.testing.assert_allclose(d.execute_prob, jax.nn.sigmoid(jnp.array([[2.0, -1.0, 0.5, -3.0]])), rtol=1e-6)


def test_gumbel_training_is_hard_forward_soft_backward():
  cfg = RoutingConfig(temperature=0.5)
  gaps = jnp.linspace(-2, 2, 64).reshape(1, 64)

  def mean_gate(g):
    return decide(_logits(g), cfg, deterministic=False, token_mask=jnp.ones((1, 64)),
                  rng=jax.random.PRNGKey(0)).gate.mean()

  d = decide(_logits(gaps), cfg, deterministic=False, token_mask=jnp.ones((1, 64)), rng=jax.random.PRNGKey(0))
  assert set(np.unique(np.asarray(d.gate)).tolist()) <= {0.0, 1.0}  # hard forward
  np.testing.assert_array_equal(d.gate > 0.5, d.execute)
  grad = jax.grad(mean_gate)(gaps)
  assert np.all(np.asarray(grad) > 0)  # raising the execute logit raises the soft execute probability
  # noise makes decisions differ from argmax for some tokens near the boundary
  assert 0 < int(np.sum(np.asarray(d.execute) != np.asarray(gaps > 0)))


def test_padding_never_executes():
  d = decide(_logits([[5.0, 5.0, 5.0]]), RoutingConfig(), deterministic=True, token_mask=jnp.array([[1, 1, 0]]))
  np.testing.assert_array_equal(d.execute, [[True, True, False]])


def test_threshold_policy():
  cfg = RoutingConfig(policy="threshold", threshold=0.8)
  d = decide(_logits([[1.0, 2.0]]), cfg, deterministic=False, token_mask=jnp.ones((1, 2)))
  # sigmoid(1) = 0.73 < 0.8 < sigmoid(2) = 0.88
  np.testing.assert_array_equal(d.execute, [[False, True]])


def test_expert_choice_takes_top_capacity_per_sequence():
  cfg = RoutingConfig(policy="expert_choice", skip_ratio=0.5)  # C = 2 of 4
  d = decide(_logits([[0.1, 3.0, -1.0, 2.0], [-5.0, -4.0, -3.0, -2.0]]), cfg, deterministic=True,
             token_mask=jnp.ones((2, 4)))
  np.testing.assert_array_equal(d.execute, [[False, True, False, True], [False, False, True, True]])


@pytest.mark.parametrize("factor,skip,length,expected", [(1.0, 0.5, 10, 5), (1.25, 0.75, 16, 5), (2.0, 0.5, 7, 7),
                                                         (1.0, 0.9, 4, 1)])
def test_capacity_formula(factor, skip, length, expected):
  assert RoutingConfig(capacity_factor=factor, skip_ratio=skip).capacity(length) == expected


def test_router_z_loss_hand_computed():
  logits = jnp.array([[[0.0, 0.0], [1.0, 1.0]]])
  expected = (np.log(2.0) ** 2 + (1 + np.log(2.0)) ** 2) / 2
  np.testing.assert_allclose(router_z_loss(logits, jnp.ones((1, 2))), expected, rtol=1e-6)


@pytest.mark.parametrize("field,value", [("skip_ratio", 1.0), ("skip_ratio", -0.1), ("capacity_factor", 0.0),
                                         ("dispatch", "scatter"), ("routed", "mlp"), ("policy", "topk"),
                                         ("routed_layers", "odd"), ("routed_layers", (0, 9))])
def test_validation_names_the_offending_field(field, value):
  with pytest.raises(ValueError, match=f"RoutingConfig.{field}="):
    RoutingConfig(**{field: value}).validate(num_layers=4)


def test_layer_patterns():
  assert [RoutingConfig(routed_layers="every_other").is_layer_routed(i, 4) for i in range(4)] == [
      False, True, False, True]
  assert [RoutingConfig(routed_layers=(0, 2)).is_layer_routed(i, 4) for i in range(4)] == [True, False, True, False]
  assert not RoutingConfig(skip_ratio=0.0).is_layer_routed(0, 4)  # SKIP_RATIO 0 builds no routers
