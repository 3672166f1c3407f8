"""A short training of a tiny model on learnable repeating-pattern sequences (shared by routing tests)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def pattern_batch(step: int, batch: int = 8, length: int = 16, max_period: int = 5) -> dict:
  """Repeating-pattern sequences: learnable, so the LM loss and the budget loss compete for real.

  Each row repeats a random run of tokens of period 2 .. max_period (drawn from 2 .. 96).
  """
  rng = np.random.default_rng(step)
  period = rng.integers(2, max_period + 1, size=(batch, 1))
  motif = rng.integers(2, 97, size=(batch, max_period))
  tokens = np.take_along_axis(motif, np.arange(length + 1)[None] % period, axis=1).astype(np.int32)
  return {"decoder_input_tokens": jnp.asarray(tokens[:, :-1]), "decoder_target_tokens": jnp.asarray(tokens[:, 1:]),
          "decoder_loss_weights": jnp.ones((batch, length), jnp.float32)}


def markov_batch(step: int, batch: int = 8, length: int = 64, vocab: int = 97, branching: int = 3) -> dict:
  """Sequences of a fixed random Markov chain over tokens 2 .. vocab-1 (each token has `branching` successors).

  Learnable like text, with many distinct tokens per sequence (unlike a repeated motif).
  """
  table = np.random.default_rng(12345).integers(2, vocab, size=(vocab, branching))  # the same chain every step
  rng = np.random.default_rng(step)
  tokens = np.zeros((batch, length + 1), np.int32)
  tokens[:, 0] = rng.integers(2, vocab, size=batch)
  choices = rng.integers(0, branching, size=(batch, length))
  for t in range(length):
    tokens[:, t + 1] = table[tokens[:, t], choices[:, t]]
  return {"decoder_input_tokens": jnp.asarray(tokens[:, :-1]), "decoder_target_tokens": jnp.asarray(tokens[:, 1:]),
          "decoder_loss_weights": jnp.ones((batch, length), jnp.float32)}


def stacked_batches(steps: int, first_step: int = 0, data=pattern_batch, **kwargs) -> dict:
  """`steps` batches stacked on a leading axis (held-out data: a `first_step` beyond the training's)."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *[data(first_step + s, **kwargs) for s in range(steps)])


def train(model, params, steps: int, learning_rate: float = 3e-3, seed: int = 1, **batch_kwargs):
  """Adam on model.loss_fn for `steps` steps (one jitted lax.scan). Returns (params, per-step metrics)."""
  tx = optax.adam(learning_rate)

  @jax.jit
  def run(params, batches, rng):
    def one(carry, batch_and_rng):
      params, opt_state = carry
      batch, step_rng = batch_and_rng
      (_, metrics), grads = jax.value_and_grad(model.loss_fn, has_aux=True)(params, batch, step_rng)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), metrics

    rngs = jax.random.split(rng, steps)
    (params, _), metrics = jax.lax.scan(one, (params, tx.init(params)), (batches, rngs))
    return params, metrics

  return run(params, stacked_batches(steps, **batch_kwargs), jax.random.PRNGKey(seed))
