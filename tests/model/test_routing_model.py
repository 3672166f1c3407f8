"""Routing properties of the whole model: dispatch equivalence, dense limits, identity skips, causality."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skip_t5x.layers import dispatch
from skip_t5x.layers.mlp import GatedMlp
from skip_t5x.layers.norms import RMSNorm
from skip_t5x.model.decoder_only import DecoderOnlyModel
from tests.model_helpers import (decisions_of, init_params, logits_of, random_tokens, set_routers, strip_routers,
                                 tiny_config, with_routing)

LENGTH = 16


@pytest.mark.parametrize("routed", ["layer", "attention", "ffn"])
def test_masked_equals_gather_when_capacity_not_binding(routed):
  masked_cfg = tiny_config(routed=routed, dispatch="masked", capacity_factor=2.0)  # C = 2 * 0.5 * T = T
  gather_cfg = with_routing(masked_cfg, dispatch="gather")
  masked, gather = DecoderOnlyModel(masked_cfg), DecoderOnlyModel(gather_cfg)
  params = set_routers(init_params(masked), kernel_scale=1.0)
  tokens = random_tokens(4, LENGTH)
  decisions = decisions_of(masked, params, tokens)
  density = np.mean([np.mean(v) for v in decisions.values()])
  assert 0.2 < density < 0.8, density  # the mocked routers really mix executing and skipping
  diff = jnp.max(jnp.abs(logits_of(masked, params, tokens) - logits_of(gather, params, tokens)))
  assert float(diff) < 1e-5


def test_gather_with_binding_capacity_drops_exactly_the_overflow():
  cfg = tiny_config(routed="layer", dispatch="masked", capacity_factor=1.0, skip_ratio=0.75)  # C = 4 of 16
  masked, gather = DecoderOnlyModel(cfg), DecoderOnlyModel(with_routing(cfg, dispatch="gather"))
  params = set_routers(init_params(masked), kernel_scale=0.3, execute_bias=1.0)
  batch = {"decoder_input_tokens": random_tokens(4, LENGTH)}
  # first layer: same input in both modes
  wanted = decisions_of(masked, params, batch["decoder_input_tokens"])["layer_00"]
  kept = decisions_of(gather, params, batch["decoder_input_tokens"])
  capacity = cfg.routing.capacity(LENGTH)
  assert int(wanted.sum(-1).min()) > capacity  # capacity binds in every row
  np.testing.assert_array_equal(kept["layer_00"], dispatch.apply_capacity(wanted, capacity))
  for name, keep in kept.items():
    assert int(keep.sum(-1).max()) <= capacity, name


@pytest.mark.parametrize("routed", ["layer", "attention", "ffn"])
def test_skip_ratio_zero_is_the_dense_model(routed):
  dense = DecoderOnlyModel(tiny_config(routed="none"))
  zero = DecoderOnlyModel(tiny_config(routed=routed, skip_ratio=0.0))
  params = init_params(dense)
  assert jax.tree.structure(params) == jax.tree.structure(init_params(zero))
  tokens = random_tokens(2, LENGTH)
  np.testing.assert_array_equal(logits_of(dense, params, tokens), logits_of(zero, params, tokens))


@pytest.mark.parametrize("routed,dispatch_mode", [("layer", "masked"), ("attention", "gather"), ("ffn", "gather")])
def test_routers_forced_to_execute_give_the_dense_output(routed, dispatch_mode):
  routed_model = DecoderOnlyModel(tiny_config(routed=routed, dispatch=dispatch_mode, capacity_factor=2.0))
  dense = DecoderOnlyModel(tiny_config(routed="none"))
  params = set_routers(init_params(routed_model), execute_bias=30.0)
  tokens = random_tokens(2, LENGTH)
  np.testing.assert_allclose(logits_of(routed_model, params, tokens),
                             logits_of(dense, strip_routers(params), tokens), atol=1e-5)


def _embed_then_head(params, x):
  x = RMSNorm().apply({"params": params["final_norm"]}, x)
  return x @ params["logits_dense"]["kernel"]


@pytest.mark.parametrize("dispatch_mode", ["masked", "gather"])
def test_every_token_skipping_makes_routed_modules_the_identity(dispatch_mode):
  tokens = random_tokens(2, LENGTH)
  # whole layers skipped: logits = head(final_norm(embedding))
  model = DecoderOnlyModel(tiny_config(routed="layer", dispatch=dispatch_mode))
  params = set_routers(init_params(model), execute_bias=-30.0)
  embedded = params["token_embedder"]["embedding"][tokens]
  np.testing.assert_allclose(logits_of(model, params, tokens), _embed_then_head(params, embedded), atol=1e-5)
  # one layer with attention skipped: x + FFN(norm(x)) only
  model = DecoderOnlyModel(tiny_config(routed="attention", num_layers=1, dispatch=dispatch_mode))
  params = set_routers(init_params(model), execute_bias=-30.0)
  layer = params["layer_00"]["sub_0"]
  x = params["token_embedder"]["embedding"][tokens]
  x = x + GatedMlp(64).apply({"params": layer["mlp"]}, RMSNorm().apply({"params": layer["pre_ffn_norm"]}, x))
  np.testing.assert_allclose(logits_of(model, params, tokens), _embed_then_head(params, x), atol=1e-5)
  # one layer with the FFN skipped: logits do not depend on the FFN weights at all
  model = DecoderOnlyModel(tiny_config(routed="ffn", num_layers=1, dispatch=dispatch_mode))
  params = set_routers(init_params(model), execute_bias=-30.0)
  scrambled = jax.tree.map(lambda w: w * 3.0, params["layer_00"]["sub_0"]["mlp"])
  params2 = {**params, "layer_00": {"sub_0": {**params["layer_00"]["sub_0"], "mlp": scrambled}}}
  np.testing.assert_array_equal(logits_of(model, params, tokens), logits_of(model, params2, tokens))


def _perturb_future(tokens, start, seed):
  noise = jax.random.randint(jax.random.PRNGKey(seed), tokens.shape, 2, 97)
  return tokens.at[:, start:].set(noise[:, start:])


@pytest.mark.parametrize("policy,dispatch_mode,training", [
    ("gumbel", "masked", False), ("gumbel", "gather", False), ("gumbel", "gather", True),
    ("threshold", "masked", True)])
def test_routing_is_causal(policy, dispatch_mode, training):
  cfg = tiny_config(routed="layer", policy=policy, dispatch=dispatch_mode, capacity_factor=1.0, threshold=0.5)
  model = DecoderOnlyModel(cfg)
  params = set_routers(init_params(model), kernel_scale=0.5, execute_bias=1.0)
  tokens = random_tokens(3, LENGTH)
  rng = jax.random.PRNGKey(11) if training else None
  base = logits_of(model, params, tokens, rng)
  cut = 9
  changed = logits_of(model, params, _perturb_future(tokens, cut, 5), rng)
  np.testing.assert_allclose(base[:, :cut], changed[:, :cut], atol=1e-6)
  assert float(jnp.max(jnp.abs(base[:, cut:] - changed[:, cut:]))) > 1e-3  # the future did change


def test_expert_choice_is_not_causal():
  # without its predictor, evaluation keeps the top-C (the predictor's causal decisions: tests/model/test_baselines.py)
  cfg = tiny_config(routed="layer", policy="expert_choice", dispatch="gather", capacity_factor=1.0, predictor_dim=0)
  model = DecoderOnlyModel(cfg)
  params = set_routers(init_params(model), kernel_scale=1.0)
  tokens = random_tokens(3, LENGTH)
  base = logits_of(model, params, tokens)
  cut = 9
  leaks = [float(jnp.max(jnp.abs(base[:, :cut] - logits_of(model, params, _perturb_future(tokens, cut, s))[:, :cut])))
           for s in range(3)]
  assert max(leaks) > 1e-3, leaks  # changing later tokens changes which earlier tokens make the top-C
