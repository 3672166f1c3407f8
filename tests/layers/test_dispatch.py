"""Masked and gather dispatch agree; capacity keeps exactly the first C executing tokens."""
import jax
import jax.numpy as jnp
import numpy as np

from skip_t5x.layers import dispatch


def _token_fn(weight):
  """A token-wise sublayer that also uses the row index, like attention does for its mask."""
  return lambda x, rows: jnp.tanh(x @ weight) + rows[..., None].astype(x.dtype) * 0.01


def test_capacity_keeps_first_c_in_position_order():
  execute = jnp.array([[1, 1, 0, 1, 1, 1], [0, 0, 1, 0, 0, 1]], bool)
  keep = dispatch.apply_capacity(execute, capacity=3)
  np.testing.assert_array_equal(keep, [[1, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 1]])


def test_kept_token_indices_are_position_ordered_and_padded():
  keep = jnp.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 1]], bool)
  rows, valid = dispatch.kept_token_indices(keep, capacity=3)
  np.testing.assert_array_equal(rows[0, :2], [1, 3])
  np.testing.assert_array_equal(valid, [[1, 1, 0], [1, 0, 0]])
  assert int(rows[1, 0]) == 4


def test_masked_equals_gather_when_capacity_is_not_binding():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 10, 8))
  weight = jax.random.normal(jax.random.PRNGKey(1), (8, 8))
  keep = jax.random.bernoulli(jax.random.PRNGKey(2), 0.5, (3, 10))
  gate = jnp.ones((3, 10))
  masked = dispatch.masked_dispatch(x, keep, gate, _token_fn(weight))
  gathered = dispatch.gather_dispatch(x, keep, gate, _token_fn(weight), capacity=10)
  np.testing.assert_allclose(masked, gathered, atol=1e-6)
  # skipped tokens are the identity
  np.testing.assert_array_equal(np.where(~keep[..., None], masked, 0), np.where(~keep[..., None], x, 0))


def test_gather_with_binding_capacity_skips_exactly_the_overflow():
  x = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 4))
  weight = jax.random.normal(jax.random.PRNGKey(4), (4, 4))
  execute = jnp.array([[1, 1, 1, 1, 1, 0, 1, 1], [1, 0, 1, 0, 1, 0, 1, 0]], bool)
  keep = dispatch.apply_capacity(execute, capacity=3)
  gate = jnp.ones((2, 8))
  out = dispatch.gather_dispatch(x, keep, gate, _token_fn(weight), capacity=3)
  reference = dispatch.masked_dispatch(x, keep, gate, _token_fn(weight))
  np.testing.assert_allclose(out, reference, atol=1e-6)
  overflow = execute & ~keep  # tokens 3, 4, 6, 7 of row 0 and 6 of row 1
  assert int(overflow.sum()) == 5
  np.testing.assert_array_equal(np.asarray(out)[np.asarray(overflow)], np.asarray(x)[np.asarray(overflow)])


def test_gate_scales_the_contribution_and_carries_gradient():
  x = jax.random.normal(jax.random.PRNGKey(5), (1, 4, 4))
  keep = jnp.array([[1, 0, 1, 1]], bool)
  fn = lambda xs, rows: jnp.ones_like(xs)

  def total(gate):
    return jnp.sum(dispatch.gather_dispatch(x, keep, gate, fn, capacity=4))

  gate = jnp.array([[0.5, 1.0, 2.0, 1.0]])
  grad = jax.grad(total)(gate)
  np.testing.assert_allclose(grad, [[4.0, 0.0, 4.0, 4.0]])  # d/dg of g * sum(delta) for executed tokens only
