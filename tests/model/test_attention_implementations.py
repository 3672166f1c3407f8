"""The decoder with blockwise attention equals it with dense scores (routed, packed, dropped keys; values and
gradients), decodes chunk by chunk exactly like its full forward, and the attention remat policies change nothing."""
import dataclasses

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skip_t5x import gin_utils
from skip_t5x.layers import fused_attention
from skip_t5x.model import decoding
from skip_t5x.model.decoder_only import DecoderOnlyModel
from tests.model_helpers import init_params, random_tokens, set_routers, tiny_config

LENGTH = 24


@pytest.fixture(autouse=True)
def small_tiles(monkeypatch):
  """Tiles of 8 on CPU, so LENGTH = 24 spans three query and three key blocks."""
  monkeypatch.setattr(fused_attention, "CPU_BLOCK", 8)


def _batch(packed: bool):
  tokens = random_tokens(2, LENGTH + 1)
  batch = {"decoder_input_tokens": tokens[:, :-1], "decoder_target_tokens": tokens[:, 1:],
           "decoder_loss_weights": jnp.ones((2, LENGTH), jnp.float32)}
  if packed:  # row 0: segments of 10 and 14 tokens; row 1: one of 20, then 4 padding tokens
    segments = np.array([[1] * 10 + [2] * 14, [1] * 20 + [0] * 4], np.int32)
    positions = np.array([list(range(10)) + list(range(14)), list(range(20)) + [0] * 4], np.int32)
    batch.update(decoder_segment_ids=jnp.asarray(segments), decoder_positions=jnp.asarray(positions),
                 decoder_loss_weights=jnp.asarray(segments > 0, jnp.float32))
  return batch


def _loss_and_grads(config, params, batch):
  """(logits, loss, gradients, metrics) of the loss at deterministic routing, in one compiled program."""
  model = DecoderOnlyModel(config)

  def run(params):
    (loss, metrics), grads = jax.value_and_grad(model.loss_fn, has_aux=True)(params, batch, None)
    return model._forward(params, batch, None)[0], loss, grads, metrics

  return jax.jit(run)(params)


@pytest.mark.parametrize("routing,packed", [
    (dict(routed="none", skip_ratio=0.0), True),
    (dict(routed="layer", dispatch="masked"), False),
    (dict(routed="layer", dispatch="gather", capacity_factor=0.6), True),  # capacity binds: queries overflow
    (dict(routed="attention", dispatch="gather", drop_skipped_keys=True), False),
])
def test_blockwise_equals_dense_scores_in_the_model(routing, packed):
  config = tiny_config(scan_layers=True, num_layers=1, **routing)
  params = set_routers(init_params(DecoderOnlyModel(config), length=LENGTH), kernel_scale=0.4, execute_bias=0.3)
  batch = _batch(packed)
  got = _loss_and_grads(dataclasses.replace(config, attention="blockwise"), params, batch)
  want = _loss_and_grads(dataclasses.replace(config, attention="dense_scores"), params, batch)
  np.testing.assert_allclose(got[0], want[0], atol=1e-5)  # logits
  np.testing.assert_allclose(got[1], want[1], atol=1e-5)  # loss
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got[2]), jax.tree_util.tree_leaves(want[2])):
    np.testing.assert_allclose(g, w, atol=1e-5, err_msg=jax.tree_util.keystr(path))
  if routing.get("capacity_factor"):
    assert float(want[3]["router/overflow"]) > 0  # the capacity really binds


@pytest.mark.parametrize("routing", [dict(routed="none", skip_ratio=0.0), dict(routed="layer", dispatch="masked")])
def test_chunked_decoding_equals_the_full_forward(routing):
  """Query chunks of 5, 1, 7 and 11 tokens at their cache offsets reproduce the full forward's logits."""
  config = dataclasses.replace(tiny_config(num_layers=1, **routing), attention="blockwise")
  model = DecoderOnlyModel(config)
  params = set_routers(init_params(model, length=LENGTH), kernel_scale=0.4, execute_bias=0.3)
  tokens = random_tokens(2, LENGTH)
  full = jax.jit(lambda p, t: model._forward(p, {"decoder_input_tokens": t}, None)[0])(params, tokens)
  cache = decoding.init_cache(model, params, 2, LENGTH)
  step = jax.jit(lambda p, c, t, pos: model.module.apply(
      {"params": p, "cache": c}, t, pos, deterministic=True, decode=True, mutable=["cache"]))
  start, chunks = 0, []
  for size in (5, 1, 7, 11):
    positions = jnp.broadcast_to(jnp.arange(start, start + size, dtype=jnp.int32), (2, size))
    (logits, _), state = step(params, cache, tokens[:, start:start + size], positions)
    cache, start = state["cache"], start + size
    chunks.append(logits)
  np.testing.assert_allclose(jnp.concatenate(chunks, axis=1), full, atol=1e-5)


def test_attention_remat_policies_give_the_same_gradients():
  config = tiny_config(scan_layers=True, num_layers=1, routed="layer", dispatch="gather")
  params = set_routers(init_params(DecoderOnlyModel(config), length=LENGTH), kernel_scale=0.4, execute_bias=0.3)
  batch = _batch(packed=True)
  want = jax.tree_util.tree_leaves(_loss_and_grads(config, params, batch)[2])
  for remat in ("attention", "attention_projections"):
    got = jax.tree_util.tree_leaves(_loss_and_grads(dataclasses.replace(config, remat=remat), params, batch)[2])
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, atol=1e-6, err_msg=remat)


def test_unknown_attention_is_refused_by_config_and_gin():
  with pytest.raises(ValueError, match="DecoderConfig.attention='flash'"):
    dataclasses.replace(tiny_config(), attention="flash").validate()
  gin.clear_config()
  try:
    gin.parse_config("ATTENTION = 'flash'")
    with pytest.raises(gin_utils.GinConfigError, match="ATTENTION='flash'"):
      gin_utils.validate_macros()
  finally:
    gin.clear_config()
