"""Prefill: the prompts run as one (or a few chunked) forward passes that fill the KV cache and the gather counters.

Ragged prompts (PrefixLM layout: row b's prompt is its first prompt_lengths[b] tokens) share one cache index:
  * every row runs over the whole prompt width P at positions 0 .. P-1: the same positions, causal masks and
    per-row capacity C (in the cache) as the full forward pass, so prompt tokens get exactly its routing;
  * positions at or past a row's prompt length are masked out (token_mask): they never execute, never count
    towards the row's executed-token counter, and the cache stores them with a False key mask;
  * decode step s then writes every row at cache row I + s - 1 (I: where the prefill stopped, the end of the last
    chunk that holds some prompt) while the row's RoPE position is prompt_lengths[b] + s - 1; attention during
    decoding applies the cached key mask, so row b sees exactly its prompt and its own generated tokens at their
    true positions: the keys and positions of the full forward pass over prompt + generated tokens (the unused
    cache rows cost memory, not results);
  * the first generated token comes from the logits at position prompt_lengths[b] - 1, as in the full pass.
A shared index keeps every cache write a plain dynamic_update_slice and the attention's queries a contiguous chunk
(which lets blockwise attention skip future key blocks). Chunks of `chunk_length` positions run in a while loop
that stops after the longest prompt of the batch; chunking bounds the attention memory of long prompts, and each
chunk continues the cache where the previous one stopped.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from skip_t5x.model.api import DecodableModel
from skip_t5x.model.decode_state import decisions_of


class Prefilled(NamedTuple):
  """The state after the prompt pass."""

  cache: dict  # every prompt position written (past each prompt: key mask False); index past the last chunk
  last_logits: jax.Array  # [batch, vocab] float32: logits at each row's last prompt position
  decisions: dict[str, jax.Array]  # {module: [batch, P] bool}: execute masks, False past each prompt


def chunk_size(width: int, chunk_length: Optional[int]) -> int:
  """Positions per prefill pass: `chunk_length` (None or 0: the whole prompt width)."""
  return width if not chunk_length else min(int(chunk_length), width)


def cache_length(width: int, max_decode_length: int, chunk_length: Optional[int]) -> int:
  """Cache positions a prefill + decode needs: the prompt width rounded up to whole chunks, + max_decode_length."""
  chunk = chunk_size(width, chunk_length)
  return -(-width // chunk) * chunk + max_decode_length


def prefill(model: DecodableModel, params, cache, tokens: jax.Array, prompt_lengths: jax.Array,
            chunk_length: Optional[int] = None) -> Prefilled:
  """tokens: [batch, P] prompts (PrefixLM input layout); prompt_lengths: [batch] in [1, P].

  cache: zeroed, for at least cache_length(P, max_decode_length, chunk_length) positions. Chunks run in a
  while loop up to the longest prompt of the batch: chunks past every prompt (padding, teacher-forced targets
  of the PrefixLM layout) cost nothing, and the cache index stops where the last chunk run ends.
  """
  batch, width = tokens.shape
  chunk = chunk_size(width, chunk_length)
  padded = cache_length(width, 0, chunk_length)
  tokens = jnp.pad(tokens, ((0, 0), (0, padded - width)))  # [batch, padded]
  token_mask = jnp.arange(padded, dtype=jnp.int32)[None, :] < prompt_lengths[:, None]  # [batch, padded]

  def run_chunk(index, cache, last_logits):
    offset = jnp.asarray(index, jnp.int32) * chunk
    chunk_tokens = jax.lax.dynamic_slice_in_dim(tokens, offset, chunk, axis=1)  # [batch, chunk]
    chunk_mask = jax.lax.dynamic_slice_in_dim(token_mask, offset, chunk, axis=1)
    return _prefill_chunk(model, params, cache, last_logits, chunk_tokens, chunk_mask, offset, prompt_lengths)

  def body(state):
    index, cache, last_logits, decisions = state
    cache, last_logits, chunk_decisions = run_chunk(index, cache, last_logits)
    decisions = {k: jax.lax.dynamic_update_slice_in_dim(v, chunk_decisions[k], index * chunk, axis=1)
                 for k, v in decisions.items()}
    return index + 1, cache, last_logits, decisions

  last_logits = jnp.zeros((batch, model.config.vocab_size), jnp.float32)
  names = jax.eval_shape(run_chunk, 0, cache, last_logits)[2]  # the routed modules
  decisions = {k: jnp.zeros((batch, padded), bool) for k in names}  # [batch, padded] per module
  needed = (jnp.max(prompt_lengths) + chunk - 1) // chunk  # chunks that hold some prompt
  state = (jnp.array(0, jnp.int32), cache, last_logits, decisions)
  _, cache, last_logits, decisions = jax.lax.while_loop(lambda state: state[0] < needed, body, state)
  return Prefilled(cache, last_logits, {k: v[:, :width] for k, v in decisions.items()})


def _prefill_chunk(model, params, cache, last_logits, chunk_tokens, chunk_mask, offset, prompt_lengths):
  """One forward pass over positions offset .. offset + c - 1 of every row; keeps the logits of each row's last
  prompt position when it falls in this chunk (the output head runs on that position only)."""
  batch, c = chunk_tokens.shape
  positions = offset + jnp.broadcast_to(jnp.arange(c, dtype=jnp.int32), (batch, c))  # [batch, c]
  local = prompt_lengths - 1 - offset  # [batch]: the last prompt position, relative to this chunk
  inside = (local >= 0) & (local < c)
  (logits, routing_stats), state = model.module.apply(
      {"params": params, "cache": cache}, chunk_tokens, positions, None, chunk_mask,
      deterministic=True, decode=True, logits_at=jnp.clip(local, 0, c - 1)[:, None], mutable=["cache"])
  last_logits = jnp.where(inside[:, None], logits[:, 0].astype(jnp.float32), last_logits)  # [batch, vocab]
  return state["cache"], last_logits, decisions_of(routing_stats)
