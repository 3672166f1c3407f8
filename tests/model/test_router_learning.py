"""The router learns: it receives gradients, and training moves realized density to the target."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from skip_t5x.model.decoder_only import DecoderOnlyModel
from tests.model_helpers import init_params, tiny_config


def _batch(step, batch=8, length=16):
  """Repeating-pattern sequences: learnable, so the LM loss and the budget loss compete for real."""
  rng = np.random.default_rng(step)
  period = rng.integers(2, 6, size=(batch, 1))
  start = rng.integers(2, 90, size=(batch, 1))
  tokens = (start + np.arange(length + 1)[None] % period).astype(np.int32)
  return {"decoder_input_tokens": jnp.asarray(tokens[:, :-1]), "decoder_target_tokens": jnp.asarray(tokens[:, 1:]),
          "decoder_loss_weights": jnp.ones((batch, length), jnp.float32)}


@pytest.mark.slow
def test_router_gets_gradients_and_density_reaches_target():
  target_skip = 0.5
  cfg = tiny_config(routed="layer", dispatch="masked", skip_ratio=target_skip, aux_loss_weight=1.0)
  model = DecoderOnlyModel(cfg)
  params = init_params(model)
  tx = optax.adam(3e-3)
  opt_state = tx.init(params)

  grads = jax.grad(lambda p: model.loss_fn(p, _batch(0), jax.random.PRNGKey(0))[0])(params)
  router_grad = grads["layer_00"]["sub_0"]["skip_layer"]["router"]["kernel"]
  assert float(jnp.linalg.norm(router_grad)) > 1e-6

  @jax.jit
  def train_steps(params, opt_state, batches, rng):
    def one(carry, batch_and_rng):
      params, opt_state = carry
      batch, step_rng = batch_and_rng
      (_, metrics), g = jax.value_and_grad(model.loss_fn, has_aux=True)(params, batch, step_rng)
      updates, opt_state = tx.update(g, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), metrics["router/density"]
    rngs = jax.random.split(rng, batches["decoder_input_tokens"].shape[0])
    return jax.lax.scan(one, (params, opt_state), (batches, rngs))

  steps = 300
  batches = jax.tree.map(lambda *xs: jnp.stack(xs), *[_batch(s) for s in range(steps)])
  (params, opt_state), densities = train_steps(params, opt_state, batches, jax.random.PRNGKey(1))
  densities = np.asarray(densities)
  start, end = densities[:10].mean(), densities[-30:].mean()
  assert abs(start - (1 - target_skip)) > 0.1, start  # routers start far from the budget (they prefer executing)
  assert abs(end - (1 - target_skip)) < 0.05, (start, end)
  # evaluation (argmax) decisions follow the budget too, not only the sampled training decisions
  eval_density = float(model.loss_fn(params, _batch(10_000), None)[1]["router/density"])
  assert abs(eval_density - (1 - target_skip)) < 0.1, eval_density
