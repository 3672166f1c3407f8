"""Incremental decoding with a KV cache, routers deciding per new token: the entry point of generation.

Two methods (`DecodeConfig.method`), both reproducing a full forward pass over each row's prompt + generated tokens
exactly (same tokens, same routing decisions; under gather dispatch each row's capacity C is set for its prompt
length + max_decode_length, as a full pass over that row alone computes it):
  * 'prefill' (default): the prompts run as one or a few chunked forward passes (prefill.py: ragged prompts share
    the cache index; the cached key mask hides what lies past each prompt), then one token per step in a while
    loop that ends when every row has emitted eos or reached max_decode_length (decode_loop.py), or beam search
    (beam_search.py, `beam_size` > 1);
  * 'token_by_token': every step feeds one token per row (the prompt's next token while inside the prompt, else
    the last generated one), so a prompt of P tokens costs P sequential steps; kept for comparison.
The cache holds keys/values of every position (skipped tokens included) and, under gather dispatch, a per-row count
of executed tokens that applies the same position-ordered overflow as the full pass.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import gin
import jax
import jax.numpy as jnp

from skip_t5x.model.api import DecodableModel
from skip_t5x.model.beam_search import beam_decode
from skip_t5x.model.decode_loop import prefill_and_generate
from skip_t5x.model.decode_state import decisions_of, init_cache  # noqa: F401 (part of this module's API)

METHODS = ("prefill", "token_by_token")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """How generation runs. gin: `DecodeConfig.beam_size = %BEAM_SIZE` (gin/runs/eval.gin)."""

  method: str = "prefill"  # 'prefill' or 'token_by_token' (the reference: one prompt token per step)
  beam_size: int = 1  # 1: greedy (or sampling with a temperature); > 1: beam search (greedy routers per beam)
  length_penalty_alpha: float = 0.6  # beam search ranks finished beams by log_prob / ((5 + length) / 6) ** alpha
  prefill_chunk_length: int = 128  # prompt positions per prefill pass (0: the whole prompt in one pass)

  def validate(self) -> "DecodeConfig":
    """Raises ValueError naming the offending field and value; returns self."""
    if self.method not in METHODS:
      raise ValueError(f"DecodeConfig.method={self.method!r} must be one of {METHODS}")
    if not isinstance(self.beam_size, int) or self.beam_size < 1:
      raise ValueError(f"DecodeConfig.beam_size={self.beam_size!r} must be a positive integer")
    if self.beam_size > 1 and self.method != "prefill":
      raise ValueError(f"DecodeConfig.beam_size={self.beam_size} needs method 'prefill', not {self.method!r}")
    if self.length_penalty_alpha < 0:
      raise ValueError(f"DecodeConfig.length_penalty_alpha={self.length_penalty_alpha} must be >= 0")
    if not isinstance(self.prefill_chunk_length, int) or self.prefill_chunk_length < 0:
      raise ValueError(f"DecodeConfig.prefill_chunk_length={self.prefill_chunk_length!r} must be an integer >= 0")
    return self


def decode(
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
    config: Optional[DecodeConfig] = None,
):
  """tokens: [batch, P] prompts (PrefixLM input layout, BOS first); prompt_lengths: [batch] in [1, P].

  Returns generated tokens [batch, max_decode_length] (0 after eos), plus the execute masks per routed module
  [batch, P + max_decode_length - 1] when `return_decisions` (beam_size 1 only). `config` None: DecodeConfig().
  """
  config = (DecodeConfig() if config is None else config).validate()
  if max_decode_length <= 0:
    raise ValueError(f"max_decode_length={max_decode_length} must be positive")
  if temperature < 0:
    raise ValueError(f"temperature={temperature} must be >= 0 (0 = greedy)")
  if config.beam_size > 1 and (temperature > 0 or return_decisions):
    raise ValueError(f"beam_size={config.beam_size} is deterministic and returns no decisions: got "
                     f"temperature={temperature}, return_decisions={return_decisions}")
  if config.method == "token_by_token":
    return greedy_or_sample(model, params, tokens, prompt_lengths, rng, max_decode_length=max_decode_length,
                            temperature=temperature, eos_id=eos_id, return_decisions=return_decisions)
  if config.beam_size > 1:
    state = beam_decode(model, params, tokens, prompt_lengths, beam_size=config.beam_size,
                        max_decode_length=max_decode_length, eos_id=eos_id, alpha=config.length_penalty_alpha,
                        chunk_length=config.prefill_chunk_length)
    return state.finished_seqs[:, 0]  # [batch, max_decode_length]
  generated = prefill_and_generate(
      model, params, tokens, prompt_lengths, rng, max_decode_length=max_decode_length, temperature=temperature,
      eos_id=eos_id, chunk_length=config.prefill_chunk_length, record_decisions=return_decisions)
  return (generated.tokens, generated.decisions) if return_decisions else generated.tokens


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
  """The token-by-token method: one token per row and step over prompt + decode positions (a lax.scan).

  tokens: [batch, P] prompts (PrefixLM input layout, BOS first); prompt_lengths: [batch] in [1, P].
  Returns generated tokens [batch, max_decode_length] (0 after eos), plus the execute masks per routed module
  [batch, P + max_decode_length - 1] when `return_decisions`.
  """
  if temperature < 0:
    raise ValueError(f"temperature={temperature} must be >= 0 (0 = greedy)")
  batch, prompt_width = tokens.shape
  total = prompt_width + max_decode_length
  cache = init_cache(model, params, batch, total, row_lengths=prompt_lengths + max_decode_length)
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
