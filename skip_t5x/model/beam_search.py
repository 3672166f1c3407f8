"""Beam search with length normalization (GNMT / T5X brevity penalty), over any step function; and its use with
the routed decoder after a prefill.

Beams are rows of the batch: row b * beam_size + k is beam k of example b, with its own cache, so the routers
decide per beam. Every step extends each alive beam by every token, keeps the 2K best (at most K of them end in
eos), continues the best K that do not end in eos and reorders the cache rows (keys, values, key masks, cache
indices and executed-token counters) to follow them; sequences that end in eos, or reach max_decode_length, join a
pool of K finished ones scored by log_prob / ((5 + length) / 6) ** alpha. An example is done when its pool is full
and no alive beam can still beat the pool's worst: log probabilities only fall, so the best an alive beam can reach
is its log probability now over the penalty at max_decode_length (alpha >= 0). The loop ends when every example is
done, which leaves the result unchanged.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from skip_t5x.model.api import DecodableModel
from skip_t5x.model.decode_state import cache_batch_axes, decode_step, init_cache, repeat_rows, take_beams
from skip_t5x.model.prefill import cache_length, prefill

NEG_INF = -1.0e9  # finite, so that sums and differences of "impossible" scores stay finite
StepFn = Callable[[object, jax.Array, jax.Array], tuple[jax.Array, object]]  # (state, tokens [B*K], step)


def brevity_penalty(alpha: float, length) -> jax.Array:
  """((5 + length) / 6) ** alpha: 1 for one token, growing with length; alpha 0 ranks by raw log probability."""
  return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


class BeamState(NamedTuple):
  step: jax.Array  # int32 scalar: index of the token the next update picks
  alive_seqs: jax.Array  # [batch, K, D]
  alive_log_probs: jax.Array  # [batch, K] float32
  finished_seqs: jax.Array  # [batch, K, D], 0 after eos
  finished_scores: jax.Array  # [batch, K] float32, length-normalized, best first
  model_state: object  # rows [batch * K]
  done: jax.Array  # [batch] bool


def beam_search(initial_logits: jax.Array, step_fn: StepFn, model_state, reorder_fn, *, beam_size: int,
                max_decode_length: int, eos_id: int, alpha: float = 0.6, early_stop: bool = True) -> BeamState:
  """initial_logits: [batch, vocab], the distribution of token 0 (shared by all beams of an example).

  step_fn(model_state, tokens [batch * K], step) -> (logits [batch * K, vocab], model_state): feeds each beam's
  token step - 1. reorder_fn(model_state, beams [batch, K]) -> model_state: row b * K + k of the new state is row
  b * K + beams[b, k] of the old one.
  Returns the final state: `finished_seqs[:, 0]` is the best sequence, `finished_scores[:, 0]` its score.
  """
  batch, vocab = initial_logits.shape
  k, length = beam_size, max_decode_length
  first_alive = jnp.where(jnp.arange(k) == 0, 0.0, NEG_INF)  # beams start identical: expand beam 0 only
  state = BeamState(
      jnp.array(0, jnp.int32), jnp.zeros((batch, k, length), jnp.int32),
      jnp.broadcast_to(first_alive, (batch, k)).astype(jnp.float32), jnp.zeros((batch, k, length), jnp.int32),
      jnp.full((batch, k), NEG_INF, jnp.float32), model_state, jnp.zeros((batch,), bool))
  advance = lambda state, logits: _advance(state, logits, reorder_fn, eos_id=eos_id, alpha=alpha, length=length)
  state = advance(state, jnp.broadcast_to(initial_logits[:, None, :], (batch, k, vocab)))

  def cond(state: BeamState):
    more = state.step < length
    return more & ~jnp.all(state.done) if early_stop else more

  def body(state: BeamState) -> BeamState:
    last = jax.lax.dynamic_index_in_dim(state.alive_seqs, state.step - 1, axis=2, keepdims=False)  # [batch, K]
    logits, model_state = step_fn(state.model_state, last.reshape(batch * k), state.step)
    return advance(state._replace(model_state=model_state), logits.reshape(batch, k, vocab))

  return jax.lax.while_loop(cond, body, state)


def _advance(state: BeamState, logits: jax.Array, reorder_fn, *, eos_id: int, alpha: float, length: int
             ) -> BeamState:
  """Picks token `state.step` for every beam from logits [batch, K, vocab]."""
  batch, k, vocab = logits.shape
  step = state.step
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  candidates = (state.alive_log_probs[:, :, None] + log_probs).reshape(batch, k * vocab)
  top_log_probs, top_index = jax.lax.top_k(candidates, 2 * k)  # [batch, 2K]
  source, token = top_index // vocab, top_index % vocab  # the beam extended, the token appended
  seqs = jnp.take_along_axis(state.alive_seqs, source[:, :, None], axis=1)  # [batch, 2K, D]
  seqs = jax.lax.dynamic_update_slice_in_dim(seqs, token[:, :, None], step, axis=2)
  ends = token == eos_id
  last_step = step >= length - 1

  alive_log_probs, keep = jax.lax.top_k(jnp.where(ends, NEG_INF, top_log_probs), k)  # [batch, K]
  alive_seqs = jnp.take_along_axis(seqs, keep[:, :, None], axis=1)
  model_state = reorder_fn(state.model_state, jnp.take_along_axis(source, keep, axis=1))  # [batch, K] beams

  new_scores = jnp.where(ends | last_step, top_log_probs / brevity_penalty(alpha, step + 1), NEG_INF)
  pool_scores = jnp.concatenate([state.finished_scores, new_scores], axis=1)  # [batch, 3K]
  pool_seqs = jnp.concatenate([state.finished_seqs, seqs], axis=1)
  finished_scores, best = jax.lax.top_k(pool_scores, k)
  finished_seqs = jnp.take_along_axis(pool_seqs, best[:, :, None], axis=1)

  reachable = alive_log_probs[:, 0] / brevity_penalty(alpha, length)  # [batch]: the most an alive beam can score
  done = state.done | last_step | (finished_scores[:, -1] > reachable)
  return BeamState(step + 1, alive_seqs, alive_log_probs, finished_seqs, finished_scores, model_state, done)


def beam_decode(model: DecodableModel, params, tokens: jax.Array, prompt_lengths: jax.Array, *, beam_size: int,
                max_decode_length: int, eos_id: int = 1, alpha: float = 0.6, chunk_length: Optional[int] = None,
                early_stop: bool = True) -> BeamState:
  """Prefills the prompts once, repeats every row's cache per beam, then beam-searches with the routed decoder.

  tokens: [batch, P] (PrefixLM input layout); prompt_lengths: [batch] in [1, P].
  """
  batch, width = tokens.shape
  total = cache_length(width, max_decode_length, chunk_length)
  cache = init_cache(model, params, batch, total, row_lengths=prompt_lengths + max_decode_length)
  filled = prefill(model, params, cache, tokens, prompt_lengths, chunk_length)
  axes = cache_batch_axes(model, params, total)
  beam_prompt_lengths = jnp.repeat(prompt_lengths, beam_size)  # [batch * K]

  def step_fn(cache, last_tokens, step):
    logits, cache, _ = decode_step(model, params, cache, last_tokens, beam_prompt_lengths + step - 1)
    return logits, cache

  return beam_search(filled.last_logits, step_fn, repeat_rows(filled.cache, axes, beam_size),
                     lambda cache, beams: take_beams(cache, axes, beams), beam_size=beam_size,
                     max_decode_length=max_decode_length, eos_id=eos_id, alpha=alpha, early_stop=early_stop)
