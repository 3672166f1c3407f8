"""DecoderOnlyModel: the T5X-style model interface (loss_fn, score_batch, predict_batch) around a Decoder.

Batches are seqio feature-converted dicts ([batch, length] arrays): decoder_input_tokens, decoder_target_tokens,
decoder_loss_weights, and optionally decoder_segment_ids / decoder_positions (packing) and decoder_causal_attention
(PrefixLM layout: marks the prompt for predict_batch). Attention is always causal, prompts included.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp

from skip_t5x.layers.routing import RoutingConfig
from skip_t5x.model import decoding, losses
from skip_t5x.model.api import Batch, Params
from skip_t5x.model.decoder import Decoder, DecoderConfig

gin.external_configurable(RoutingConfig, name="RoutingConfig")
gin.external_configurable(DecoderConfig, name="DecoderConfig")


@gin.configurable
class DecoderOnlyModel:
  """Wraps a Decoder with losses, scoring and decoding. Stateless: params are passed to every call."""

  def __init__(self, config: DecoderConfig = gin.REQUIRED, z_loss: float = 1e-4, label_smoothing: float = 0.0):
    self.config = config.validate()
    self.module = Decoder(config)
    self.z_loss = z_loss
    self.label_smoothing = label_smoothing

  def with_routing(self, **changes) -> "DecoderOnlyModel":
    """The same model (same parameter tree) with RoutingConfig fields changed, e.g. elastic inference thresholds."""
    config = dataclasses.replace(self.config, routing=dataclasses.replace(self.config.routing, **changes))
    return type(self)(config, z_loss=self.z_loss, label_smoothing=self.label_smoothing)

  # ---- parameters ----------------------------------------------------------------------------------------------
  def get_initial_variables(self, rng: jax.Array, input_shapes: Mapping[str, tuple[int, ...]]) -> dict:
    """Boxed variables ({'params': tree of nn.Partitioned}) for inputs of the given shapes."""
    shape = tuple(input_shapes["decoder_input_tokens"])

    @jax.jit
    def init(rng):
      params_rng, gumbel_rng = jax.random.split(rng)
      tokens = jnp.ones(shape, jnp.int32)
      variables = self.module.init({"params": params_rng, "gumbel": gumbel_rng}, tokens, deterministic=True)
      return {"params": variables["params"]}

    return init(rng)

  # ---- forward -------------------------------------------------------------------------------------------------
  def _forward(self, params: Params, batch: Batch, rng: Optional[jax.Array],
               gap_thresholds: Optional[jax.Array] = None):
    deterministic = rng is None
    rngs = None if deterministic else {"gumbel": rng}
    return self.module.apply(
        {"params": params},
        batch["decoder_input_tokens"],
        batch.get("decoder_positions"),
        batch.get("decoder_segment_ids"),
        _token_mask(batch),
        deterministic=deterministic,
        rngs=rngs,
        gap_thresholds=gap_thresholds,
    )

  def loss_fn(self, params: Params, batch: Batch, dropout_rng: Optional[jax.Array]) -> tuple[jax.Array, dict]:
    """Mean per-target-token cross entropy + z-loss + router losses, and flat scalar metrics.

    `dropout_rng` drives the routers' Gumbel noise; None runs deterministically (argmax routing), as in eval.
    """
    logits, routing_stats = self._forward(params, batch, dropout_rng)
    targets = batch["decoder_target_tokens"]
    weights = batch.get("decoder_loss_weights")
    weights = (targets > 0).astype(jnp.float32) if weights is None else weights.astype(jnp.float32)
    num_tokens = jnp.maximum(jnp.sum(weights), 1.0)
    cross_entropy, z_loss = losses.cross_entropy_with_z_loss(logits, targets, self.z_loss, self.label_smoothing)
    ce = jnp.sum(cross_entropy * weights) / num_tokens
    zl = jnp.sum(z_loss * weights) / num_tokens
    router_aux, router_z, router_metrics = losses.routing_losses(routing_stats, self.config.routing)
    loss = ce + zl + router_aux + router_z
    accuracy = jnp.sum((jnp.argmax(logits, -1) == targets) * weights) / num_tokens
    metrics = {
        "loss": loss,
        "cross_entropy": ce,
        "z_loss": zl,
        "accuracy": accuracy,
        "num_tokens": jnp.sum(weights),
        **router_metrics,
    }
    return loss, metrics

  # ---- evaluation ------------------------------------------------------------------------------------------------
  def score_batch(self, params: Params, batch: Batch) -> jax.Array:
    """[batch] float32: sum over positions of log p(target) x decoder_loss_weights (deterministic routing)."""
    logits, _ = self._forward(params, batch, None)
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # [batch, length, vocab]
    targets = batch["decoder_target_tokens"]
    token_log_probs = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]  # [batch, length]
    weights = batch.get("decoder_loss_weights")
    weights = (targets > 0) if weights is None else weights
    return jnp.sum(token_log_probs * weights.astype(jnp.float32), axis=-1)

  def routing_decisions(self, params: Params, batch: Batch) -> dict[str, jax.Array]:
    """Deterministic execute masks per routed module, {name: [batch, length] bool} (for analysis and tests)."""
    _, routing_stats = self._forward(params, batch, None)
    return decoding.decisions_of(routing_stats)

  def routing_gaps(self, params: Params, batch: Batch, gap_thresholds: Optional[jax.Array] = None) -> dict:
    """Deterministic routing under elastic thresholds [num_routed] (None: the config's), for calibration.

    Returns {'gap': {module: [batch, length] float32}, 'execute': {module: [batch, length] bool},
    'token_mask': [batch, length] bool}: each module's decision score (execute iff gap > threshold) and decision.
    """
    _, routing_stats = self._forward(params, batch, None, gap_thresholds)
    token_mask = _token_mask(batch)
    if token_mask is None:
      token_mask = jnp.ones(batch["decoder_input_tokens"].shape, bool)
    return {"gap": {name: s["gap"] for name, s in routing_stats.items()},
            "execute": decoding.decisions_of(routing_stats), "token_mask": token_mask}

  def predict_batch(
      self,
      params: Params,
      batch: Batch,
      rng: Optional[jax.Array] = None,
      *,
      max_decode_length: int,
      temperature: float = 0.0,
      eos_id: int = 1,
      return_decisions: bool = False,
      decode_config: Optional[decoding.DecodeConfig] = None,
  ):
    """Continues each prompt with a KV cache; the routers decide per new token (argmax).

    The prompt of row b is the first sum(decoder_causal_attention[b]) tokens of decoder_input_tokens[b] (seqio
    PrefixLMFeatureConverter layout); without decoder_causal_attention the prompt is the non-padding prefix.
    `decode_config` (None: DecodeConfig(), with its gin bindings) picks prefill or token-by-token decoding and
    the beam size. Returns generated tokens [batch, max_decode_length] (0 after eos), and with `return_decisions`
    also the per-module execute masks over prompt + generated positions.
    """
    tokens = batch["decoder_input_tokens"]
    if "decoder_causal_attention" in batch:
      prompt_lengths = jnp.sum(batch["decoder_causal_attention"], axis=-1).astype(jnp.int32)
    else:
      prompt_lengths = jnp.sum(tokens != 0, axis=-1).astype(jnp.int32) + 1  # +1: the leading BOS (0)
    return decoding.decode(
        self, params, tokens, prompt_lengths, rng,
        max_decode_length=max_decode_length, temperature=temperature, eos_id=eos_id,
        return_decisions=return_decisions, config=decode_config)


def _token_mask(batch: Batch) -> Optional[jax.Array]:
  """Which positions hold real tokens: packed segments, else non-padding targets or loss weights."""
  if batch.get("decoder_segment_ids") is not None:
    return batch["decoder_segment_ids"] > 0
  if batch.get("decoder_target_tokens") is not None:
    return batch["decoder_target_tokens"] > 0
  return None
