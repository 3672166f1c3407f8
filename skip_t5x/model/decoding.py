"""Incremental decoding with a KV cache: one token per step, routers deciding per new token.

Every step feeds one token per row (the prompt's next token while inside the prompt, else the last generated one),
so rows with different prompt lengths share one loop and decoding reproduces a full forward pass exactly: the KV
cache holds keys/values of every position (skipped tokens included) and, under gather dispatch, a per-sequence
count of executed tokens that applies the same position-ordered capacity as the full pass.
"""
from __future__ import annotations

from typing import Mapping, Optional

import flax
import jax
import jax.numpy as jnp

from skip_t5x.model.api import DecodableModel


def decisions_of(routing_stats: Mapping[str, Mapping[str, jax.Array]]) -> dict[str, jax.Array]:
  """{routed module name: execute mask [batch, length] bool} from the decoder's routing stats."""
  return {name: stats["execute"] for name, stats in sorted(routing_stats.items())}


def init_cache(model: DecodableModel, params, batch_size: int, length: int):
  """Zeroed cache for `length` positions, with the gather capacity set for that length."""
  tokens = jax.ShapeDtypeStruct((batch_size, length), jnp.int32)
  shapes = jax.eval_shape(
      lambda t: model.module.apply({"params": params}, t, decode=True, mutable=["cache"])[1]["cache"], tokens)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(shapes))
  capacity = model.config.routing.capacity(length)
  cache = {
      path: jnp.full(s.shape, capacity if path[-1] == "capacity" else 0, s.dtype) for path, s in flat.items()
  }
  return flax.traverse_util.unflatten_dict(cache)


def greedy_or_sample(
    model: DecodableModel,
    params,
    tokens: jax.Array,
    prompt_lengths: jax.Array,
    rng: Optional[jax.Array],
    *,
    max_decode_length: int,
    temperature: float = 0.0,
    eos_id: int = 1,
    return_decisions: bool = False,
):
  """tokens: [batch, P] prompts (PrefixLM input layout, BOS first); prompt_lengths: [batch] in [1, P].

  Returns generated tokens [batch, max_decode_length] (0 after eos), plus the execute masks per routed module
  [batch, P + max_decode_length - 1] when `return_decisions`.
  """
  if temperature < 0:
    raise ValueError(f"temperature={temperature} must be >= 0 (0 = greedy)")
  batch, prompt_width = tokens.shape
  total = prompt_width + max_decode_length
  cache = init_cache(model, params, batch, total)
  rng = jax.random.PRNGKey(0) if rng is None else rng
  padded = jnp.pad(tokens, ((0, 0), (0, max_decode_length)))  # [batch, total]

  def step(carry, t):
    cache, last, generated, done, rng = carry
    in_prompt = t < prompt_lengths  # [batch]
    token = jnp.where(in_prompt, padded[:, t], last)  # [batch]
    positions = jnp.full((batch, 1), t, jnp.int32)
    (logits, routing_stats), state = model.module.apply(
        {"params": params, "cache": cache}, token[:, None], positions,
        deterministic=True, decode=True, mutable=["cache"])
    logits = logits[:, 0]  # [batch, vocab]
    rng, sample_rng = jax.random.split(rng)
    if temperature > 0:
      next_token = jax.random.categorical(sample_rng, logits / temperature, axis=-1)
    else:
      next_token = jnp.argmax(logits, axis=-1)
    next_token = next_token.astype(jnp.int32)
    slot = t - (prompt_lengths - 1)  # [batch]: index of this prediction among generated tokens
    generating = (slot >= 0) & ~done
    write = jnp.where(generating, next_token, 0)
    generated = jax.vmap(lambda g, s, w: g.at[s].set(w, mode="drop"))(generated, jnp.maximum(slot, 0), write)
    done = done | (generating & (next_token == eos_id)) | (slot >= max_decode_length - 1)
    decisions = {k: v[:, 0] for k, v in decisions_of(routing_stats).items()}  # [batch]
    return (state["cache"], next_token, generated, done, rng), decisions

  carry = (cache, jnp.zeros((batch,), jnp.int32), jnp.zeros((batch, max_decode_length), jnp.int32),
           jnp.zeros((batch,), bool), rng)
  carry, decisions = jax.lax.scan(step, carry, jnp.arange(total - 1, dtype=jnp.int32))
  generated = carry[2]
  if return_decisions:
    return generated, {k: v.T for k, v in decisions.items()}  # [batch, total - 1]
  return generated
