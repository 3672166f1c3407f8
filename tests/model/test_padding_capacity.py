"""Capacity from each row's real length (C_row = ceil(CF * P * real_length)): the same sequences score, train and
route the same whatever padding follows them, with capacity binding, under masked and gather dispatch."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skip_t5x.model.decoder_only import DecoderOnlyModel
from tests.model_helpers import init_params, random_tokens, set_routers, tiny_config

REAL_LENGTHS = (16, 11, 7)
SHORT, LONG = 16, 28  # padded widths: capacity from the width would be 7 and 12 tokens


def _model(policy, dispatch_mode):
  cfg = tiny_config(routed="layer", policy=policy, dispatch=dispatch_mode, capacity_factor=0.8)
  model = DecoderOnlyModel(cfg)
  return model, set_routers(init_params(model), kernel_scale=0.4, execute_bias=1.0)  # most tokens want to run


def _batch(width):
  tokens = np.asarray(random_tokens(len(REAL_LENGTHS), SHORT + 1, seed=2))
  inputs = np.zeros((len(REAL_LENGTHS), width), np.int32)
  targets = np.zeros_like(inputs)
  for row, n in enumerate(REAL_LENGTHS):
    inputs[row, :n], targets[row, :n] = tokens[row, :n], tokens[row, 1:n + 1]
  return {"decoder_input_tokens": jnp.asarray(inputs), "decoder_target_tokens": jnp.asarray(targets),
          "decoder_loss_weights": jnp.asarray((targets > 0).astype(np.float32))}


@functools.lru_cache(maxsize=None)
def _programs(model):
  return (jax.jit(model.score_batch), jax.jit(model.routing_decisions),
          jax.jit(lambda p, b, rng: model.loss_fn(p, b, rng)[1]))


@pytest.mark.parametrize("policy,dispatch_mode", [
    ("gumbel", "gather"), ("gumbel", "masked"), ("random", "gather"), ("early_exit", "gather"),
    ("expert_choice", "gather")])
def test_same_sequences_same_scores_and_decisions_at_any_padding(policy, dispatch_mode):
  model, params = _model(policy, dispatch_mode)
  score, decide, metrics = _programs(model)
  short, long = _batch(SHORT), _batch(LONG)
  np.testing.assert_allclose(score(params, short), score(params, long), atol=1e-5, rtol=0)
  wanted, padded = decide(params, short), decide(params, long)
  for name in wanted:
    for row, n in enumerate(REAL_LENGTHS):
      np.testing.assert_array_equal(wanted[name][row, :n], padded[name][row, :n], err_msg=f"{name} row {row}")
      assert not np.any(padded[name][row, n:])  # padding never executes
  if dispatch_mode == "gather" and policy != "expert_choice":  # capacity binds: the full row hits its C
    capacity = model.config.routing.capacity(REAL_LENGTHS[0])
    assert capacity < SHORT and any(int(np.sum(d[0])) == capacity for d in padded.values())
  if policy == "expert_choice":  # training executes each row's top C_row, deterministically: the same loss
    rng = jax.random.PRNGKey(0)
    losses = [metrics(params, batch, rng)["cross_entropy"] for batch in (short, long)]
    np.testing.assert_allclose(losses[0], losses[1], atol=1e-5, rtol=0)


def test_row_capacity_is_the_capacity_of_the_rows_real_length():
  model, _ = _model("gumbel", "gather")
  routing = model.config.routing
  lengths = jnp.array([0, 1, 7, 11, 16])
  np.testing.assert_array_equal(routing.row_capacity(lengths, LONG),
                                [0] + [routing.capacity(int(n)) for n in lengths[1:]])
  assert int(routing.row_capacity(jnp.array([LONG]), LONG)[0]) == routing.capacity(LONG)  # no padding: as before


def test_decoding_does_not_depend_on_the_prompt_batch_width():
  model, params = _model("gumbel", "gather")
  prompts = np.array(random_tokens(3, 7, seed=4))
  prompts[:, 0] = 0  # BOS first
  prompt_lengths = np.array([3, 7, 5])
  predict = jax.jit(lambda p, b: model.predict_batch(p, b, max_decode_length=6, eos_id=-1, return_decisions=True))
  results = []
  for width in (7, 12):  # the same prompts, padded wider
    tokens = np.zeros((3, width), np.int32)
    tokens[:, :7] = np.where(np.arange(7)[None] < prompt_lengths[:, None], prompts, 0)
    causal = (np.arange(width)[None] < prompt_lengths[:, None]).astype(np.int32)
    results.append(predict(params, {"decoder_input_tokens": jnp.asarray(tokens), "decoder_causal_attention": causal}))
  (narrow, narrow_decisions), (wide, wide_decisions) = results
  np.testing.assert_array_equal(narrow, wide)
  for name in narrow_decisions:
    for row, n in enumerate(prompt_lengths):
      steps = n + 6 - 1  # positions fed to the model for this row
      np.testing.assert_array_equal(narrow_decisions[name][row, :steps], wide_decisions[name][row, :steps])
