"""Incremental decoding with the KV cache reproduces the full forward pass: same tokens, same routing decisions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skip_t5x.model.decoder_only import DecoderOnlyModel
from skip_t5x.model.decoding import DecodeConfig
from tests.model_helpers import decisions_of, init_params, logits_of, random_tokens, set_routers, tiny_config

PROMPT_WIDTH, DECODE = 7, 6


@pytest.mark.parametrize("routed,dispatch_mode,scan,drop_keys", [
    ("layer", "masked", False, False),
    ("layer", "gather", True, False),  # capacity binds: the cache's executed-token counter must match
    ("attention", "gather", False, True),
    ("ffn", "masked", True, False),
])
def test_decoding_matches_full_forward(routed, dispatch_mode, scan, drop_keys):
  cfg = tiny_config(routed=routed, dispatch=dispatch_mode, scan_layers=scan, capacity_factor=0.8,
                    drop_skipped_keys=drop_keys)
  model = DecoderOnlyModel(cfg)
  params = set_routers(init_params(model), kernel_scale=0.4, execute_bias=0.3)
  prompts = random_tokens(3, PROMPT_WIDTH).at[:, 0].set(0)  # BOS first, PrefixLM input layout
  prompt_lengths = np.array([3, 7, 5])
  causal = (np.arange(PROMPT_WIDTH)[None] < prompt_lengths[:, None]).astype(np.int32)
  batch = {"decoder_input_tokens": prompts, "decoder_causal_attention": causal}
  token_by_token = DecodeConfig(method="token_by_token")  # the reference path (tests/model/test_prefill.py: prefill)
  generated, decisions = jax.jit(
      lambda p, b: model.predict_batch(p, b, max_decode_length=DECODE, eos_id=-1, return_decisions=True,
                                       decode_config=token_by_token))(params, batch)
  any_skip = False
  for row, length in enumerate(prompt_lengths):
    seq = np.concatenate([np.asarray(prompts[row, :length]), np.asarray(generated[row])])
    full = seq[None].astype(np.int32)  # the row alone: decoding sets its capacity for prompt + decode length
    logits = logits_of(model, params, jnp.asarray(full))
    greedy = np.argmax(np.asarray(logits[0, length - 1:length - 1 + DECODE]), axis=-1)
    np.testing.assert_array_equal(greedy, generated[row])
    full_decisions = decisions_of(model, params, jnp.asarray(full))
    assert set(full_decisions) == set(decisions) and decisions
    for name, executed in full_decisions.items():
      steps = len(seq) - 1  # positions fed to the decoder
      np.testing.assert_array_equal(decisions[name][row, :steps], executed[0, :steps], err_msg=name)
      any_skip |= not bool(np.all(executed[0, :steps]))
  assert any_skip  # the routers really skipped something


def test_eos_stops_generation_and_sampling_is_seeded():
  model = DecoderOnlyModel(tiny_config(routed="layer"))
  params = init_params(model)
  prompts = random_tokens(2, 4).at[:, 0].set(0)
  batch = {"decoder_input_tokens": prompts, "decoder_causal_attention": jnp.ones((2, 4), jnp.int32)}
  greedy = model.predict_batch(params, batch, max_decode_length=5, eos_id=-1)
  first = int(greedy[0, 0])
  stopped = model.predict_batch(params, batch, max_decode_length=5, eos_id=first)
  assert int(stopped[0, 0]) == first and np.all(np.asarray(stopped[0, 1:]) == 0)
  a = model.predict_batch(params, batch, jax.random.PRNGKey(3), max_decode_length=5, temperature=1.0, eos_id=-1)
  b = model.predict_batch(params, batch, jax.random.PRNGKey(3), max_decode_length=5, temperature=1.0, eos_id=-1)
  np.testing.assert_array_equal(a, b)
  assert np.all((np.asarray(a) >= 0) & (np.asarray(a) < 97))


def test_expert_choice_refuses_incremental_decoding():
  model = DecoderOnlyModel(tiny_config(routed="layer", policy="expert_choice", predictor_dim=0))  # top-C only
  params = init_params(model)
  batch = {"decoder_input_tokens": random_tokens(1, 4), "decoder_causal_attention": jnp.ones((1, 4), jnp.int32)}
  with pytest.raises(ValueError, match="expert_choice"):
    model.predict_batch(params, batch, max_decode_length=2)
