"""The FFN run in token chunks (each rematerialized) equals the FFN run on all tokens at once."""
import jax
import jax.numpy as jnp
import numpy as np

from skip_t5x.layers.mlp import GatedMlp


def test_token_chunks_give_the_same_values_and_gradients():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 12, 8))  # [batch, tokens, embed]
  whole, chunked = GatedMlp(16), GatedMlp(16, token_chunk=4)
  params = whole.init(jax.random.PRNGKey(1), x)
  loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  np.testing.assert_allclose(chunked.apply(params, x), whole.apply(params, x), atol=1e-6)
  got = jax.grad(loss(chunked), argnums=(0, 1))(params, x)
  want = jax.grad(loss(whole), argnums=(0, 1))(params, x)
  for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(g, w, atol=1e-5)
  # a chunk that does not divide the tokens leaves them whole
  np.testing.assert_allclose(GatedMlp(16, token_chunk=5).apply(params, x), whole.apply(params, x), atol=1e-6)
