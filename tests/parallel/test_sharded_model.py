"""The model under GSPMD: sharded forward equals single-device; token gather/scatter needs no collectives."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from skip_t5x import parallel
from skip_t5x.layers.routing import POLICY_CHOICES
from skip_t5x.model.decoder_only import DecoderOnlyModel
from tests.model_helpers import init_params, random_tokens, set_routers, tiny_config

COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")


def _sharded_forward(model, mesh, rules, tokens, seed=0):
  """Initialises the params sharded (abstract shapes -> shardings -> jit with out_shardings) and runs a forward."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    abstract = jax.eval_shape(
        lambda: model.get_initial_variables(jax.random.PRNGKey(seed), {"decoder_input_tokens": tokens.shape}))
    shardings = parallel.tree_shardings(abstract["params"], mesh, rules)
    init = jax.jit(
        lambda: parallel.strip_boxes(
            model.get_initial_variables(jax.random.PRNGKey(seed), {"decoder_input_tokens": tokens.shape})["params"]),
        out_shardings=shardings)
    params = set_routers(init(), kernel_scale=0.5, execute_bias=0.5)
    params = jax.device_put(params, shardings)
    token_sharding = NamedSharding(mesh, nn.logical_to_mesh_axes(("batch", "length"), rules))
    forward = jax.jit(lambda p, t: model._forward(p, {"decoder_input_tokens": t}, None)[0])
    tokens = jax.device_put(np.asarray(tokens), token_sharding)
    compiled = forward.lower(params, tokens).compile()
    return params, np.asarray(compiled(params, tokens)), compiled.as_text()


@pytest.mark.parametrize("dispatch_mode", ["masked", "gather"])
def test_sharded_forward_on_4x2_mesh_equals_single_device(dispatch_mode):
  model = DecoderOnlyModel(tiny_config(routed="layer", dispatch=dispatch_mode, capacity_factor=1.0))
  tokens = random_tokens(8, 16)
  mesh = parallel.create_mesh(parallel.MeshConfig(data=4, fsdp=1, model=2))
  params, sharded, _ = _sharded_forward(model, mesh, parallel.logical_axis_rules(), tokens)
  q = params["layer_00"]["sub_0"]["attention"]["query"]
  assert q.sharding.spec[1] == "model"  # heads really split over the model axis
  single_params = jax.device_get(params)
  reference = jax.jit(lambda p, t: model._forward(p, {"decoder_input_tokens": t}, None)[0])(single_params, tokens)
  np.testing.assert_allclose(sharded, reference, atol=2e-5)


def test_gather_dispatch_needs_no_collectives_under_batch_sharding():
  model = DecoderOnlyModel(tiny_config(routed="layer", dispatch="gather", capacity_factor=1.0))
  mesh = parallel.create_mesh(parallel.MeshConfig(data=8, fsdp=1, model=1))
  _, _, hlo = _sharded_forward(model, mesh, parallel.logical_axis_rules(), random_tokens(8, 16))
  assert "scatter" in hlo or "dynamic-update-slice" in hlo  # the gather/scatter dispatch is in the program
  found = [c for c in COLLECTIVES if c in hlo]
  assert not found, found


@pytest.mark.parametrize("policy", POLICY_CHOICES)
def test_every_routing_policy_lays_out_its_params_on_a_mesh(policy):
  """What train, eval and aot do first: abstract sharded params under the logical axis rules (every param's axis
  names must map to mesh axes, each at most once per array)."""
  model = DecoderOnlyModel(tiny_config(routed="layer", policy=policy))
  placement = parallel.place_model(model, parallel.MeshConfig(data=2, fsdp=2, model=2), 16, batch_size=8)
  abstract = placement.abstract_params()
  expected = jax.tree_util.tree_map(lambda x: x.shape, init_params(model))
  assert jax.tree_util.tree_map(lambda x: x.shape, abstract) == expected
  shardings = [x.sharding.spec for x in jax.tree_util.tree_leaves(abstract)]
  assert any("fsdp" in str(spec) for spec in shardings)  # really laid out, not all replicated
