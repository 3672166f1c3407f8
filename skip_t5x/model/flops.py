"""Analytic FLOPs per token for any DecoderConfig, dense or routed.

Counts matrix multiplies (2 FLOPs per multiply-add), as implemented: keys and values are computed for every token
(also in routed layers), queries/attention/output projection and the FFN only for executed tokens, plus the routers
of every policy: 'gumbel', 'threshold' and 'early_exit' run one router per routed module on every token (early
exit's exited tokens still run it and still produce keys/values); 'random' has no router (a hash, not counted);
'expert_choice' adds Mixture-of-Depths' predictor MLP (d_model -> predictor_dim -> 1) when it has one.
Attention scores are counted against `seq_len` keys per query (the dense [queries, keys] product that is computed,
causal mask or not). Training counts forward + backward as 3x forward.

`density` is the fraction of tokens that run each routed module. By default it is what the dispatch mode computes:
1.0 for masked dispatch (every token is computed, jnp.where selects) and C / seq_len for gather dispatch. Pass a
realized density to get the FLOPs an ideal implementation spends on the tokens that actually execute.
"""
from __future__ import annotations

from typing import Optional

from skip_t5x.model.decoder import DecoderConfig


def computed_density(config: DecoderConfig, seq_len: int) -> float:
  """Fraction of tokens each routed module computes under the configured dispatch."""
  rc = config.routing
  if not rc.enabled or rc.dispatch == "masked":
    return 1.0
  return rc.capacity(seq_len) / seq_len


def layer_flops(config: DecoderConfig, seq_len: int, attn_fraction: float, ffn_fraction: float) -> dict[str, float]:
  """Forward FLOPs per token of one layer whose attention queries / FFN run on the given token fractions."""
  e, h, kv, d, f = config.d_model, config.num_heads, config.num_kv_heads, config.head_dim, config.mlp_dim
  return {
      "attention_kv": 2.0 * e * 2 * kv * d,
      "attention_q": attn_fraction * 2.0 * e * h * d,
      "attention_scores": attn_fraction * 2.0 * 2 * h * d * seq_len,  # q.k and probs.v
      "attention_out": attn_fraction * 2.0 * h * d * e,
      "mlp": ffn_fraction * 2.0 * 3 * e * f,
  }


def router_flops(config: DecoderConfig) -> dict[str, float]:
  """Forward FLOPs per token of one routed module's decision-making, by policy."""
  rc, e = config.routing, config.d_model
  result = {"router": 0.0 if not rc.has_router else 2.0 * e * 2}
  if rc.has_predictor:
    result["predictor"] = 2.0 * e * rc.predictor_dim + 2.0 * rc.predictor_dim
  return result


def flops_per_token(
    config: DecoderConfig, *, seq_len: int, training: bool = False, density: Optional[float] = None
) -> dict[str, float]:
  """Per-token FLOPs by component plus 'total' (and 'dense_total', the same model without routing)."""
  rc = config.routing
  density = computed_density(config, seq_len) if density is None else float(density)
  if not 0.0 <= density <= 1.0:
    raise ValueError(f"density={density} must be in [0, 1]")
  totals: dict[str, float] = {}
  dense_total = 0.0
  for routed in config.routed_layer_flags:
    attn_frac = density if routed and rc.routed in ("layer", "attention") else 1.0
    ffn_frac = density if routed and rc.routed in ("layer", "ffn") else 1.0
    for name, value in layer_flops(config, seq_len, attn_frac, ffn_frac).items():
      totals[name] = totals.get(name, 0.0) + value
    dense_total += sum(layer_flops(config, seq_len, 1.0, 1.0).values())
    if routed:
      for name, value in router_flops(config).items():
        totals[name] = totals.get(name, 0.0) + value
  totals["output_head"] = 2.0 * config.d_model * config.vocab_size
  dense_total += totals["output_head"]
  factor = 3.0 if training else 1.0
  result = {name: factor * value for name, value in totals.items()}
  result["total"] = sum(result.values())
  result["dense_total"] = factor * dense_total
  return result


def total_flops_per_token(config: DecoderConfig, seq_len: int, density: Optional[float] = None, *,
                          training: bool = False) -> float:
  """The one number most callers want: total FLOPs per token at `density` (default: what the dispatch computes)."""
  return float(flops_per_token(config, seq_len=seq_len, training=training, density=density)["total"])


def dense_flops_per_token(config: DecoderConfig, seq_len: int, *, training: bool = False) -> float:
  """FLOPs per token of the same model with every routed module executing every token (and no routers)."""
  return float(flops_per_token(config, seq_len=seq_len, training=training, density=1.0)["dense_total"])


def flops_per_sequence(config: DecoderConfig, *, seq_len: int, training: bool = False,
                       density: Optional[float] = None) -> float:
  return seq_len * flops_per_token(config, seq_len=seq_len, training=training, density=density)["total"]
