"""The model API that training, evaluation and the commands program against (T5X's BaseModel, as a Protocol).

Batches are seqio feature-converted dicts of [batch, length] int32 arrays: decoder_input_tokens,
decoder_target_tokens, decoder_loss_weights, and optionally decoder_segment_ids / decoder_positions (packing) and
decoder_causal_attention (PrefixLM layout: marks the prompt). Params are passed to every call; models are stateless.
docs/interfaces.md describes each method's contract.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, runtime_checkable

import flax.linen as nn
import jax

Batch = Mapping[str, jax.Array]
Params = Any


@runtime_checkable
class DecodableModel(Protocol):
  """What incremental decoding needs: the Flax module (with a `decode` mode and a KV cache) and its config."""

  config: Any  # DecoderConfig: vocab_size, routing (capacity for the cache length)
  module: nn.Module


@runtime_checkable
class LanguageModel(DecodableModel, Protocol):
  """A decoder-only language model with routers: everything the trainer, evaluator and commands call."""

  def get_initial_variables(self, rng: jax.Array, input_shapes: Mapping[str, tuple[int, ...]]) -> dict:
    """Boxed variables {'params': tree of nn.Partitioned} for inputs of the given shapes."""

  def loss_fn(self, params: Params, batch: Batch, dropout_rng: Optional[jax.Array]) -> tuple[jax.Array, dict]:
    """(scalar loss, flat scalar metrics); `dropout_rng` None routes deterministically (argmax), as in eval."""

  def score_batch(self, params: Params, batch: Batch) -> jax.Array:
    """[batch] float32 log-likelihood of the weighted targets (deterministic routing)."""

  def routing_decisions(self, params: Params, batch: Batch) -> dict[str, jax.Array]:
    """{routed module name: [batch, length] bool execute mask} (deterministic routing)."""

  def predict_batch(self, params: Params, batch: Batch, rng: Optional[jax.Array] = None, *,
                    max_decode_length: int, temperature: float = 0.0, eos_id: int = 1,
                    return_decisions: bool = False, decode_config: Any = None) -> Any:
    """Generated tokens [batch, max_decode_length] (0 after eos), with decisions when asked.

    decode_config: a model.decoding.DecodeConfig (prefill or token-by-token, beam size); None for the default.
    """
