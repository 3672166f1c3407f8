"""The decoder-only Transformer: which layers and modules are routed, scan and remat over layers.

Each layer is pre-norm: x -> x + Attention(RMSNorm(x)) -> x + GatedMlp(RMSNorm(x)). Depending on
`RoutingConfig.routed`, a routed layer wraps in a SkipLayer the whole layer ('layer'), its attention ('attention')
or its FFN ('ffn'). Attention keys/values are always computed for every token (see layers/attention.py).
Routing side inputs travel with the layers: the token ids and positions (hashed by the 'random' policy), a layer
index and an elastic gap threshold per layer (scanned inputs under nn.scan), and early exit's `exited` masks
[batch, length, 2] (part of the carry, so a token that skipped one routed module skips every later one).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from skip_t5x.layers.attention import CHECKPOINT_NAMES, Attention
from skip_t5x.layers.attention_mask import AttentionMask
from skip_t5x.layers.fused_attention import IMPLEMENTATIONS as ATTENTION_IMPLEMENTATIONS
from skip_t5x.layers.embed import Embed, OutputHead
from skip_t5x.layers.kv_cache import KVCache
from skip_t5x.layers.mlp import GatedMlp
from skip_t5x.layers.norms import RMSNorm
from skip_t5x.layers.routing import RouteContext, RoutingConfig
from skip_t5x.model.routing_inputs import initial_exit_state, per_layer_route_inputs
from skip_t5x.layers.skip import SkipLayer

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# What each layer keeps for the backward pass (the rest is recomputed there). 'attention' keeps only the attention
# output and its log-sum-exp: the backward reruns the projections and the FFN but never the attention itself, and
# nothing per layer is larger than the residual stream. 'attention_projections' also keeps the q/k/v/output
# projections (4 more tensors of that size per layer), so only the FFN is recomputed.
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    "attention": jax.checkpoint_policies.save_only_these_names(CHECKPOINT_NAMES["residuals"]),
    "attention_projections": jax.checkpoint_policies.save_only_these_names(
        *(CHECKPOINT_NAMES[name] for name in ("residuals", "query", "key", "value", "output"))),
}


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
  """Sizes and numerics of the decoder. Every field is a gin knob (see gin/models/)."""

  vocab_size: int = 32_128
  num_layers: int = 2
  d_model: int = 128
  num_heads: int = 4
  num_kv_heads: int = 4
  head_dim: int = 32
  mlp_dim: int = 512
  mlp_activation: str = "silu"
  dtype: str = "float32"  # activations: 'float32' or 'bfloat16'
  param_dtype: str = "float32"
  scan_layers: bool = False
  remat: str = "none"  # a REMAT_POLICIES key: 'none', 'full', 'dots', 'attention', 'attention_projections'
  attention: str = "auto"  # 'auto' (fused kernel where it applies) | 'blockwise' | 'dense_scores'
  mlp_token_chunk: int = 0  # > 0: the FFN runs (and is rematerialized) this many tokens at a time; 0: all at once
  rope_max_wavelength: float = 10_000.0
  routing: RoutingConfig = RoutingConfig()

  def validate(self) -> "DecoderConfig":
    """Raises ValueError naming the offending field and value; returns self."""
    def bad(field, why):
      raise ValueError(f"DecoderConfig.{field}={getattr(self, field)!r}: {why}")

    for field in ("vocab_size", "num_layers", "d_model", "num_heads", "num_kv_heads", "head_dim", "mlp_dim"):
      if not isinstance(getattr(self, field), int) or getattr(self, field) <= 0:
        bad(field, "must be a positive integer")
    if self.num_heads % self.num_kv_heads:
      bad("num_kv_heads", f"must divide num_heads={self.num_heads}")
    if self.head_dim % 2:
      bad("head_dim", "must be even (rotary embeddings)")
    for field in ("dtype", "param_dtype"):
      if getattr(self, field) not in DTYPES:
        bad(field, f"must be one of {sorted(DTYPES)}")
    if self.remat not in REMAT_POLICIES:
      bad("remat", f"must be one of {sorted(REMAT_POLICIES)}")
    if self.attention not in ATTENTION_IMPLEMENTATIONS:
      bad("attention", f"must be one of {ATTENTION_IMPLEMENTATIONS}")
    if not isinstance(self.mlp_token_chunk, int) or self.mlp_token_chunk < 0:
      bad("mlp_token_chunk", "must be an integer >= 0 (0: no chunking)")
    if self.mlp_activation not in ("silu", "gelu", "relu"):
      bad("mlp_activation", "must be 'silu', 'gelu' or 'relu'")
    self.routing.validate(self.num_layers)
    if self.scan_layers:
      scan_block_size(self)  # raises if the routed-layer pattern is not periodic
    return self

  @property
  def routed_layer_flags(self) -> tuple[bool, ...]:
    return tuple(self.routing.is_layer_routed(i, self.num_layers) for i in range(self.num_layers))

  def routed_module_names(self) -> list[str]:
    """Names of routed modules in layer order, e.g. ['layer_01'] or ['layer_00_attn', ...]."""
    suffix = {"layer": "", "attention": "_attn", "ffn": "_ffn"}.get(self.routing.routed, "")
    return [f"layer_{i:02d}{suffix}" for i, routed in enumerate(self.routed_layer_flags) if routed]


def scan_block_size(config: DecoderConfig) -> int:
  """Layers per scanned block: 1 when every layer is alike, 2 for 'every_other' routing."""
  flags = config.routed_layer_flags
  for period in (1, 2):
    if config.num_layers % period == 0 and all(flags[i] == flags[i % period] for i in range(config.num_layers)):
      return period
  raise ValueError(
      f"scan_layers=True needs a periodic routed-layer pattern (all, none or every_other); "
      f"routed_layers={config.routing.routed_layers!r} over {config.num_layers} layers is not: set scan_layers=False")


@dataclasses.dataclass
class TokenInfo:
  """Per-token side inputs shared by every layer."""

  positions: jax.Array  # [batch, length] RoPE positions
  token_mask: jax.Array  # [batch, length] bool: real (non-padding) tokens
  segment_ids: Optional[jax.Array] = None  # [batch, length] packed-sequence ids
  token_ids: Optional[jax.Array] = None  # [batch, length] int32 input tokens (the 'random' policy hashes them)


jax.tree_util.register_dataclass(
    TokenInfo, data_fields=["positions", "token_mask", "segment_ids", "token_ids"], meta_fields=[])


class DecoderLayer(nn.Module):
  """One pre-norm Transformer layer, routed or not."""

  config: DecoderConfig
  routed: bool
  deterministic: bool = True
  decode: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, info: TokenInfo, exited: Optional[jax.Array] = None, layer_index: Any = 0,
               gap_threshold: Optional[jax.Array] = None) -> tuple[jax.Array, dict[str, Any], Optional[jax.Array]]:
    """-> (x, routing stats per module, early exit's updated `exited` masks)."""
    cfg, rc = self.config, self.config.routing
    dtype, param_dtype = DTYPES[cfg.dtype], DTYPES[cfg.param_dtype]
    attn_norm = RMSNorm(dtype=dtype, param_dtype=param_dtype, name="pre_attention_norm")
    ffn_norm = RMSNorm(dtype=dtype, param_dtype=param_dtype, name="pre_ffn_norm")
    attention = Attention(cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.rope_max_wavelength,
                          dtype=dtype, param_dtype=param_dtype, implementation=cfg.attention, name="attention")
    mlp = GatedMlp(cfg.mlp_dim, cfg.mlp_activation, dtype=dtype, param_dtype=param_dtype,
                   token_chunk=cfg.mlp_token_chunk, name="mlp")
    kv_cache = KVCache(name="kv_cache") if self.decode else None
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))  # [batch, length, embed]
    x_norm = attn_norm(x)
    keys, values = attention.keys_values(x_norm, info.positions)  # [batch, length, kv_heads, head_dim]
    drop_keys = self.routed and rc.drop_skipped_keys and rc.routed in ("layer", "attention")

    def attention_delta(x_sub, rows, keep):  # [batch, S, embed], [batch, S] -> [batch, S, embed]
      key_mask = keep if drop_keys else info.token_mask
      all_keys, all_values, key_mask, row_offset = keys, values, key_mask, 0
      if kv_cache is not None:
        all_keys, all_values, key_mask, row_offset = kv_cache(keys, values, key_mask)
      segments = info.segment_ids
      q_segments = None if segments is None else jnp.take_along_axis(segments, rows, axis=-1)
      # rows, segments and key mask: the attention builds its mask tile by tile (no [batch, S, T] tensor);
      # all_rows is a contiguous chunk at the cache offset, which lets it skip future key blocks or use a fused kernel
      # decoding: the cached key mask also hides the rows a prefill wrote past each sequence's prompt
      mask = AttentionMask(rows + row_offset, q_segments, segments,
                           key_mask if drop_keys or kv_cache is not None else None,
                           q_start=row_offset if rows is all_rows else None)
      q_positions = jnp.take_along_axis(info.positions, rows, axis=-1)
      return attention.attend(attn_norm(x_sub), q_positions, all_keys, all_values, mask)

    def ffn_delta(h_sub, rows, keep):
      del rows, keep
      return mlp(ffn_norm(h_sub))

    def layer_delta(x_sub, rows, keep):
      attended = attention_delta(x_sub, rows, keep)
      return attended + ffn_delta(x_sub + attended, rows, keep)

    all_rows = jnp.broadcast_to(jnp.arange(x.shape[1], dtype=jnp.int32), x.shape[:2])
    skip = lambda name: SkipLayer(rc, name=name)
    context = RouteContext(token_ids=info.token_ids, positions=info.positions, layer_index=layer_index,
                           gap_threshold=gap_threshold, exited=exited)
    route_kwargs = dict(deterministic=self.deterministic, decode=self.decode, context=context)
    stats = {}
    if not self.routed:
      x = x + attention_delta(x, all_rows, info.token_mask)
      x = x + ffn_delta(x, all_rows, info.token_mask)
    elif rc.routed == "layer":
      x, stats["layer"] = skip("skip_layer")(x, x_norm, layer_delta, info.token_mask, **route_kwargs)
    elif rc.routed == "attention":
      x, stats["attn"] = skip("skip_attention")(x, x_norm, attention_delta, info.token_mask, **route_kwargs)
      x = x + ffn_delta(x, all_rows, info.token_mask)
    else:  # 'ffn'
      x = x + attention_delta(x, all_rows, info.token_mask)
      x, stats["ffn"] = skip("skip_ffn")(x, ffn_norm(x), ffn_delta, info.token_mask, **route_kwargs)
    for module_stats in stats.values():
      exited = module_stats.pop("exited", exited)
    return nn.with_logical_constraint(x, ("batch", "length", "embed")), stats, exited


class DecoderBlock(nn.Module):
  """`len(routed_flags)` consecutive layers: the unit that nn.scan repeats."""

  config: DecoderConfig
  routed_flags: tuple[bool, ...]
  deterministic: bool = True
  decode: bool = False

  @nn.compact
  def __call__(self, carry: tuple, info: TokenInfo, per_layer: dict[str, jax.Array]):
    """carry: (x, exited); per_layer: {'index'[, 'gap_threshold']}, one entry per layer of the block."""
    x, exited = carry
    layer_cls = DecoderLayer
    policy = REMAT_POLICIES[self.config.remat]
    if self.config.remat != "none":
      layer_cls = nn.remat(DecoderLayer, policy=policy, prevent_cse=not self.config.scan_layers)
    block_stats = []
    for j, routed in enumerate(self.routed_flags):
      layer = layer_cls(self.config, routed, self.deterministic, self.decode, name=f"sub_{j}")
      threshold = per_layer["gap_threshold"][j] if "gap_threshold" in per_layer else None
      x, stats, exited = layer(x, info, exited, per_layer["index"][j], threshold)
      block_stats.append(stats)
    return (x, exited), block_stats


class Decoder(nn.Module):
  """Token ids [batch, length] -> float32 logits [batch, length, vocab] and per-module routing stats."""

  config: DecoderConfig

  @nn.compact
  def __call__(
      self,
      tokens: jax.Array,
      positions: Optional[jax.Array] = None,
      segment_ids: Optional[jax.Array] = None,
      token_mask: Optional[jax.Array] = None,
      *,
      deterministic: bool = True,
      decode: bool = False,
      gap_thresholds: Optional[jax.Array] = None,
      logits_at: Optional[jax.Array] = None,
  ) -> tuple[jax.Array, dict[str, dict[str, jax.Array]]]:
    """gap_thresholds: [num_routed] elastic cuts on the routers' gaps (evaluation; see evaluation/calibration.py).

    logits_at: [batch, k] row indices: logits [batch, k, vocab] of those rows only (a prefill needs one per row).
    """
    cfg = self.config
    dtype, param_dtype = DTYPES[cfg.dtype], DTYPES[cfg.param_dtype]
    batch, length = tokens.shape
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
    if token_mask is None:
      token_mask = jnp.ones((batch, length), bool) if segment_ids is None else segment_ids > 0
    info = TokenInfo(positions=positions, token_mask=token_mask.astype(bool), segment_ids=segment_ids,
                     token_ids=tokens)
    per_layer = per_layer_route_inputs(cfg, gap_thresholds)
    exited = initial_exit_state(cfg, batch, length)  # None unless early exit

    x = Embed(cfg.vocab_size, cfg.d_model, dtype=dtype, param_dtype=param_dtype, name="token_embedder")(tokens)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))  # [batch, length, embed]
    flags = cfg.routed_layer_flags
    stats: dict[str, dict[str, jax.Array]] = {}
    if cfg.scan_layers:
      period = scan_block_size(cfg)
      scanned = nn.scan(
          DecoderBlock,
          variable_axes={"params": 0, "cache": 0},
          split_rngs={"params": True, "gumbel": True},
          in_axes=(nn.broadcast, 0),
          length=cfg.num_layers // period,
          metadata_params={nn.PARTITION_NAME: "layers"},
      )
      per_block = jax.tree.map(lambda v: v.reshape(cfg.num_layers // period, period), per_layer)
      (x, _), block_stats = scanned(cfg, flags[:period], deterministic, decode, name="layers")(
          (x, exited), info, per_block)
      for j, layer_stats in enumerate(block_stats):  # each leaf: [num_blocks]
        for module, values in layer_stats.items():
          for b in range(cfg.num_layers // period):
            stats[_module_name(b * period + j, module)] = {k: v[b] for k, v in values.items()}
    else:
      for i, routed in enumerate(flags):
        block = DecoderBlock(cfg, (routed,), deterministic, decode, name=f"layer_{i:02d}")
        (x, exited), (layer_stats,) = block((x, exited), info, jax.tree.map(lambda v: v[i:i + 1], per_layer))
        for module, values in layer_stats.items():
          stats[_module_name(i, module)] = values
    if logits_at is not None:
      x = jnp.take_along_axis(x, logits_at[:, :, None], axis=1)  # [batch, k, embed]
    x = RMSNorm(dtype=dtype, param_dtype=param_dtype, name="final_norm")(x)
    logits = OutputHead(cfg.vocab_size, dtype=dtype, param_dtype=param_dtype, name="logits_dense")(x)
    logits = nn.with_logical_constraint(logits, ("batch", "length", "vocab"))
    return logits, dict(sorted(stats.items()))


def _module_name(layer: int, module: str) -> str:
  return f"layer_{layer:02d}" + {"layer": "", "attn": "_attn", "ffn": "_ffn"}[module]
