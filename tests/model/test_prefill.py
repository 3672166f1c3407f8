"""Prefill + decode reproduces the full forward pass (tokens and routing decisions) and the token-by-token path;
the while loop stops as soon as every row is done, with the output of a full-length run."""
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skip_t5x.model import decode_loop
from skip_t5x.model import prefill as prefill_lib
from skip_t5x.model.decode_state import decisions_of, init_cache
from skip_t5x.model.decoder_only import DecoderOnlyModel
from skip_t5x.model.decoding import DecodeConfig
from tests.model_helpers import init_params, random_tokens, set_routers, tiny_config

PROMPT_WIDTH, DECODE = 7, 6
PROMPT_LENGTHS = np.array([3, 7, 5])  # ragged: row b's prompt is its first PROMPT_LENGTHS[b] tokens


def prompt_batch(batch: int = 3, seed: int = 1):
  prompts = random_tokens(batch, PROMPT_WIDTH, seed).at[:, 0].set(0)  # BOS first, PrefixLM input layout
  lengths = PROMPT_LENGTHS[:batch]
  causal = (np.arange(PROMPT_WIDTH)[None] < lengths[:, None]).astype(np.int32)
  return {"decoder_input_tokens": prompts, "decoder_causal_attention": causal}, lengths


@functools.lru_cache(maxsize=None)
def full_pass(model):
  """Logits and decisions of one forward pass over rows padded to a common width, padding masked out."""
  def run(params, tokens, real_lengths):
    token_mask = jnp.arange(tokens.shape[1])[None, :] < real_lengths[:, None]  # [batch, length]
    logits, stats = model.module.apply({"params": params}, tokens, None, None, token_mask, deterministic=True)
    return logits, decisions_of(stats)
  return jax.jit(run)


def predict(model, params, batch, config, **kwargs):
  fn = jax.jit(lambda p, b: model.predict_batch(p, b, max_decode_length=DECODE, eos_id=-1, return_decisions=True,
                                                decode_config=config, **kwargs))
  return jax.device_get(fn(params, batch))


@pytest.mark.parametrize("routed,dispatch_mode,scan,drop_keys,policy,chunk", [
    ("layer", "gather", True, False, "gumbel", 3),  # capacity binds; chunks of 3 + a remainder of 1
    ("attention", "gather", False, True, "threshold", 0),
    ("layer", "masked", False, False, "threshold", 0),
    ("ffn", "masked", True, False, "gumbel", 4),
])
def test_prefill_decoding_matches_full_forward_and_token_by_token(routed, dispatch_mode, scan, drop_keys, policy,
                                                                   chunk):
  cfg = tiny_config(routed=routed, dispatch=dispatch_mode, scan_layers=scan, capacity_factor=0.8,
                    drop_skipped_keys=drop_keys, policy=policy)
  model = DecoderOnlyModel(cfg)
  params = set_routers(init_params(model), kernel_scale=0.4, execute_bias=0.3)
  batch, lengths = prompt_batch()
  generated, decisions = predict(model, params, batch, DecodeConfig(prefill_chunk_length=chunk))
  reference, reference_decisions = predict(model, params, batch, DecodeConfig(method="token_by_token"))
  np.testing.assert_array_equal(generated, reference)

  real = lengths + DECODE  # prompt + generated tokens per row
  full = np.zeros((len(lengths), PROMPT_WIDTH + DECODE), np.int32)
  for row, length in enumerate(lengths):
    full[row, :real[row]] = np.concatenate([np.asarray(batch["decoder_input_tokens"][row, :length]), generated[row]])
  logits, full_decisions = jax.device_get(full_pass(model)(params, jnp.asarray(full), jnp.asarray(real)))
  assert set(full_decisions) == set(decisions) and decisions
  saturated = False
  for row, length in enumerate(lengths):
    np.testing.assert_array_equal(np.argmax(logits[row, length - 1:length - 1 + DECODE], -1), generated[row])
    fed = real[row] - 1  # positions fed to the decoder (the last generated token is not)
    for name, executed in full_decisions.items():
      np.testing.assert_array_equal(decisions[name][row, :fed], executed[row, :fed], err_msg=name)
      np.testing.assert_array_equal(decisions[name][row, :fed], reference_decisions[name][row, :fed], err_msg=name)
      capacity = int(cfg.routing.row_capacity(jnp.asarray([real[row]]), PROMPT_WIDTH + DECODE)[0])
      saturated |= int(executed[row, :real[row]].sum()) == capacity
      assert 0 < executed[row, :fed].sum() < fed, name  # the routers really route
  assert saturated or dispatch_mode == "masked"  # under gather the executed-token counter reaches C: it binds


def test_while_loop_stops_when_every_row_is_done_with_the_full_length_output():
  model = DecoderOnlyModel(tiny_config(routed="layer", dispatch="gather", capacity_factor=0.8))
  params = set_routers(init_params(model), kernel_scale=0.4, execute_bias=0.3)
  batch, lengths = prompt_batch(seed=2)
  tokens, lengths = batch["decoder_input_tokens"], jnp.asarray(lengths)
  decode = 16
  run = jax.jit(lambda p, eos, early: decode_loop.prefill_and_generate(
      model, p, tokens, lengths, None, max_decode_length=decode, eos_id=eos, early_stop=early),
      static_argnums=(1, 2))
  free = np.asarray(run(params, -1, True).tokens)  # no eos: every row runs to `decode` tokens
  # an eos that every row emits before its last token (the tiny model repeats itself)
  shared = set.intersection(*(set(row[:decode - 2].tolist()) for row in free))
  assert shared, free
  eos = min(shared)
  first_eos = np.array([list(row).index(eos) for row in free])  # [batch]
  expected = np.where(np.arange(decode)[None] <= first_eos[:, None], free, 0)
  early, full_length = run(params, eos, True), run(params, eos, False)
  np.testing.assert_array_equal(early.tokens, expected)
  np.testing.assert_array_equal(full_length.tokens, expected)
  assert int(full_length.steps) == decode
  assert int(early.steps) == first_eos.max() + 1 < decode  # the loop ran only until the last row's eos


def test_prefill_runs_only_the_chunks_that_hold_some_prompt():
  model = DecoderOnlyModel(tiny_config(routed="layer", dispatch="gather", capacity_factor=0.8))
  params = set_routers(init_params(model), kernel_scale=0.4, execute_bias=0.3)
  width, chunk, lengths = 16, 4, jnp.array([3, 6])  # prompts padded far wider than the longest (6)
  tokens = random_tokens(2, width).at[:, 0].set(0)
  run = jax.jit(lambda p: prefill_lib.prefill(
      model, p, init_cache(model, p, 2, prefill_lib.cache_length(width, 4, chunk), lengths + 4), tokens, lengths,
      chunk))
  filled = jax.device_get(run(params))
  indices = [v for path, v in flax.traverse_util.flatten_dict(filled.cache).items() if path[-1] == "cache_index"]
  assert indices and all(int(i) == 8 for i in indices)  # two chunks of 4 cover both prompts; two are skipped
  for name, executed in filled.decisions.items():
    assert executed.shape == (2, width) and not executed[:, 6:].any()  # nothing past the prompts executes
    np.testing.assert_array_equal(executed[:, :6] & (np.arange(6) < np.asarray(lengths)[:, None]), executed[:, :6])


def test_decode_config_rejects_bad_values_by_name():
  for bad, field in [(dict(method="scan"), "method"), (dict(beam_size=0), "beam_size"),
                     (dict(beam_size=2, method="token_by_token"), "beam_size"),
                     (dict(length_penalty_alpha=-1.0), "length_penalty_alpha"),
                     (dict(prefill_chunk_length=-2), "prefill_chunk_length")]:
    with pytest.raises(ValueError, match=f"DecodeConfig.{field}"):
      DecodeConfig(**bad).validate()
  model = DecoderOnlyModel(tiny_config(routed="layer"))
  batch, _ = prompt_batch(batch=2)
  with pytest.raises(ValueError, match="beam_size=2"):
    model.predict_batch(init_params(model), batch, max_decode_length=2, temperature=1.0,
                        decode_config=DecodeConfig(beam_size=2))
