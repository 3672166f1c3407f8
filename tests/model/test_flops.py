"""Analytic FLOPs (flops.py) against hand-computed values and XLA's cost analysis of the compiled program."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from skip_t5x.model import flops
from skip_t5x.model.decoder import DecoderConfig
from skip_t5x.layers.routing import RoutingConfig
from skip_t5x.model.decoder_only import DecoderOnlyModel


def test_hand_computed_dense_and_routed_counts():
  cfg = DecoderConfig(vocab_size=10, num_layers=1, d_model=4, num_heads=2, num_kv_heads=1, head_dim=2, mlp_dim=8,
                      routing=RoutingConfig(routed="none"))
  # kv: 2*4*2*1*2=32, q: 2*4*2*2=32, scores: 2*2*2*2*T=16T, out: 32, mlp: 2*3*4*8=192, head: 2*4*10=80
  t = 6
  dense = flops.flops_per_token(cfg, seq_len=t)
  assert dense["total"] == 32 + 32 + 16 * t + 32 + 192 + 80
  routed = dataclasses.replace(cfg, routing=RoutingConfig(routed="ffn", dispatch="gather", skip_ratio=0.5))
  got = flops.flops_per_token(routed, seq_len=t)
  assert got["mlp"] == 96 and got["router"] == 16 and got["attention_q"] == 32
  assert got["total"] == dense["total"] - 96 + 16
  assert flops.flops_per_token(routed, seq_len=t, training=True)["total"] == 3 * got["total"]
  masked = dataclasses.replace(routed, routing=dataclasses.replace(routed.routing, dispatch="masked"))
  assert flops.flops_per_token(masked, seq_len=t)["mlp"] == 192  # masked computes every token


def test_every_policy_counts_its_own_decision_making():
  cfg = DecoderConfig(vocab_size=10, num_layers=2, d_model=4, num_heads=2, num_kv_heads=1, head_dim=2, mlp_dim=8,
                      routing=RoutingConfig(routed="layer", dispatch="masked", skip_ratio=0.5))
  t = 6
  totals = {}
  for policy in ("gumbel", "threshold", "early_exit", "random", "expert_choice"):
    routed = dataclasses.replace(cfg, routing=dataclasses.replace(cfg.routing, policy=policy, predictor_dim=3))
    totals[policy] = flops.flops_per_token(routed, seq_len=t, density=0.5)
  router, predictor = 2 * 4 * 2, 2 * 4 * 3 + 2 * 3  # per routed layer: d_model x 2 logits; d_model -> 3 -> 1
  assert totals["gumbel"]["router"] == totals["early_exit"]["router"] == 2 * router
  assert totals["random"]["router"] == 0 and "predictor" not in totals["random"]
  assert totals["expert_choice"]["predictor"] == 2 * predictor
  assert totals["expert_choice"]["total"] - totals["gumbel"]["total"] == 2 * predictor
  assert totals["gumbel"]["total"] - totals["random"]["total"] == 2 * router
  no_predictor = dataclasses.replace(cfg, routing=dataclasses.replace(cfg.routing, policy="expert_choice",
                                                                      predictor_dim=0))
  assert flops.flops_per_token(no_predictor, seq_len=t)["total"] == flops.flops_per_token(cfg, seq_len=t)["total"]


@pytest.mark.parametrize("routed,policy", [("layer", "gumbel"), ("ffn", "gumbel"), ("layer", "random"),
                                           ("layer", "early_exit"), ("layer", "expert_choice")])
def test_xla_cost_analysis_agrees_within_ten_percent(routed, policy):
  # predictor_dim is large so that a predictor left out of the count would miss XLA's figure by more than 10%
  cfg = DecoderConfig(vocab_size=512, num_layers=2, d_model=256, num_heads=4, num_kv_heads=4, head_dim=64,
                      mlp_dim=1024, routing=RoutingConfig(routed=routed, dispatch="gather", skip_ratio=0.5,
                                                          policy=policy, predictor_dim=1024))
  model = DecoderOnlyModel(cfg)
  batch, length = 2, 128
  params = jax.eval_shape(lambda: nn.unbox(
      model.get_initial_variables(jax.random.PRNGKey(0), {"decoder_input_tokens": (1, length)})["params"]))
  tokens = jax.ShapeDtypeStruct((batch, length), jnp.int32)
  compiled = jax.jit(lambda p, t: model._forward(p, {"decoder_input_tokens": t}, None)[0]).lower(
      params, tokens).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla = cost["flops"] / (batch * length)
  analytic = flops.flops_per_token(cfg, seq_len=length)["total"]
  assert abs(xla - analytic) / analytic < 0.10, (xla, analytic)
  dense = flops.flops_per_token(cfg, seq_len=length)["dense_total"]
  assert analytic < dense  # routing really saves compute in gather mode
