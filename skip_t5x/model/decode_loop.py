"""Greedy and temperature decoding after a prefill, in a lax.while_loop that stops once every row is done.

Step s (1 <= s < max_decode_length) feeds each row's token s - 1 at position prompt_lengths + s - 1 and picks
token s; token 0 comes from the prefill logits. A row is done after it emits eos or its last token; the loop ends
when all rows are done, so a batch of short answers costs a few steps instead of max_decode_length.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from skip_t5x.model.api import DecodableModel
from skip_t5x.model.decode_state import decode_step, init_cache
from skip_t5x.model.prefill import cache_length, prefill


class Generated(NamedTuple):
  """What generation returns (a pytree, so jitted functions can return it whole)."""

  tokens: jax.Array  # [batch, max_decode_length] int32, 0 after eos
  decisions: dict[str, jax.Array]  # {module: [batch, P + max_decode_length - 1] bool} (empty unless recorded)
  steps: jax.Array  # int32: decode steps run after the prefill (the loop's iterations + 1 for token 0)


class _LoopState(NamedTuple):
  """The while loop's carry."""

  step: jax.Array  # int32 scalar: index of the token this iteration picks
  cache: dict
  last: jax.Array  # [batch] the token picked last
  tokens: jax.Array  # [batch, max_decode_length]
  done: jax.Array  # [batch] bool
  rng: jax.Array
  decisions: dict


def pick_token(logits: jax.Array, temperature: float, rng: jax.Array) -> jax.Array:
  """[batch, vocab] -> [batch] int32: argmax (temperature 0) or a sample of softmax(logits / temperature)."""
  if temperature > 0:
    return jax.random.categorical(rng, logits / temperature, axis=-1).astype(jnp.int32)
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def prefill_and_generate(
    model: DecodableModel, params, tokens: jax.Array, prompt_lengths: jax.Array, rng: Optional[jax.Array], *,
    max_decode_length: int, temperature: float = 0.0, eos_id: int = 1, chunk_length: Optional[int] = None,
    record_decisions: bool = False, early_stop: bool = True,
) -> Generated:
  """tokens: [batch, P] prompts (PrefixLM input layout); prompt_lengths: [batch] in [1, P].

  `early_stop=False` runs every step even when all rows are done (for comparisons); the tokens are the same.
  """
  batch, width = tokens.shape
  total = cache_length(width, max_decode_length, chunk_length)
  rng = jax.random.PRNGKey(0) if rng is None else rng
  cache = init_cache(model, params, batch, total, row_lengths=prompt_lengths + max_decode_length)
  filled = prefill(model, params, cache, tokens, prompt_lengths, chunk_length)
  rng, first_rng = jax.random.split(rng)
  first = pick_token(filled.last_logits, temperature, first_rng)  # [batch]
  generated = jnp.zeros((batch, max_decode_length), jnp.int32).at[:, 0].set(first)
  decisions = {}
  if record_decisions:  # [batch, P + max_decode_length - 1]: positions fed to the model
    decisions = {k: jnp.pad(v, ((0, 0), (0, max_decode_length - 1))) for k, v in filled.decisions.items()}
  state = _LoopState(jnp.array(1, jnp.int32), filled.cache, first, generated,
                     (first == eos_id) | (max_decode_length <= 1), rng, decisions)
  rows = jnp.arange(batch)

  def cond(state: _LoopState):
    more = state.step < max_decode_length
    return more & ~jnp.all(state.done) if early_stop else more

  def body(state: _LoopState) -> _LoopState:
    positions = prompt_lengths + state.step - 1  # [batch]: where the last picked token sits
    logits, cache, step_decisions = decode_step(model, params, state.cache, state.last, positions)
    rng, sample_rng = jax.random.split(state.rng)
    token = pick_token(logits, temperature, sample_rng)
    write = jnp.where(state.done, 0, token)
    generated = jax.lax.dynamic_update_slice_in_dim(state.tokens, write[:, None], state.step, axis=1)
    done = state.done | (token == eos_id) | (state.step >= max_decode_length - 1)
    recorded = {k: v.at[rows, positions].set(step_decisions[k]) for k, v in state.decisions.items()}
    return _LoopState(state.step + 1, cache, token, generated, done, rng, recorded)

  state = jax.lax.while_loop(cond, body, state)
  return Generated(state.tokens, state.decisions, state.step)
