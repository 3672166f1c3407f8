"""The baselines are routing policies of one decoder: decoding reproduces the full pass for each, the causal ones
ignore the future, random skipping holds its ratio without a router, early exit is monotone over depth."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skip_t5x.model.decoder_only import DecoderOnlyModel
from tests.model.short_training import markov_batch, stacked_batches, train
from tests.model_helpers import init_params, random_tokens, set_routers, tiny_config

PROMPT_WIDTH, DECODE = 7, 6


def _model(policy, dispatch_mode, scan, num_layers=2, **routing):
  """A tiny routed model with mocked routers whose decisions mix executing and skipping."""
  cfg = tiny_config(routed="layer", policy=policy, dispatch=dispatch_mode, scan_layers=scan, capacity_factor=0.8,
                    num_layers=num_layers, **routing)
  model = DecoderOnlyModel(cfg)
  return model, set_routers(init_params(model), kernel_scale=0.4, execute_bias=0.3)  # decisions mix


@functools.lru_cache(maxsize=None)
def _jitted(model, what):
  if what == "logits":
    return jax.jit(lambda p, b, rng: model._forward(p, b, rng)[0])
  return jax.jit(model.routing_decisions)


def _padded_batch(rows, width):
  """Rows of different lengths right-padded to `width`; the real tokens are marked by nonzero targets."""
  tokens = np.zeros((len(rows), width), np.int32)
  real = np.zeros((len(rows), width), np.int32)
  for i, row in enumerate(rows):
    tokens[i, :len(row)] = row
    real[i, :len(row)] = 1
  return {"decoder_input_tokens": jnp.asarray(tokens), "decoder_target_tokens": jnp.asarray(real)}


@pytest.mark.parametrize("policy,dispatch_mode,scan,elastic", [
    ("gumbel", "masked", False, None), ("threshold", "gather", True, None), ("random", "gather", False, None),
    ("early_exit", "gather", True, None), ("expert_choice", "masked", True, None),
    ("gumbel", "gather", False, (0.6, 0.2))])  # elastic inference thresholds (with their hashed tie-breaker)
def test_decoding_matches_the_full_forward_for_every_policy(policy, dispatch_mode, scan, elastic):
  model, params = _model(policy, dispatch_mode, scan)
  if elastic:
    model = model.with_routing(inference_skip_ratio=0.3, gap_thresholds=elastic)
  prompts = random_tokens(3, PROMPT_WIDTH).at[:, 0].set(0)  # BOS first, PrefixLM input layout
  prompt_lengths = np.array([3, 7, 5])
  causal = (np.arange(PROMPT_WIDTH)[None] < prompt_lengths[:, None]).astype(np.int32)
  batch = {"decoder_input_tokens": prompts, "decoder_causal_attention": causal}
  generated, decisions = jax.jit(
      lambda p, b: model.predict_batch(p, b, max_decode_length=DECODE, eos_id=-1, return_decisions=True))(
          params, batch)
  # The full pass: every row (prompt + generated) in one batch, padded to the widest; per-row capacity makes the
  # padding irrelevant, so each row routes as decoding did (its capacity set for prompt + decode length).
  rows = [np.concatenate([np.asarray(prompts[r, :n]), np.asarray(generated[r])]) for r, n in enumerate(prompt_lengths)]
  full = _padded_batch(rows, PROMPT_WIDTH + DECODE)
  logits = _jitted(model, "logits")(params, full, None)
  full_decisions = _jitted(model, "decisions")(params, full)
  assert set(full_decisions) == set(decisions) and decisions
  mixed = False
  for r, n in enumerate(prompt_lengths):
    greedy = np.argmax(np.asarray(logits[r, n - 1:n - 1 + DECODE]), axis=-1)
    np.testing.assert_array_equal(greedy, generated[r])
    steps = len(rows[r]) - 1  # positions fed to the decoder
    for name, executed in full_decisions.items():
      np.testing.assert_array_equal(decisions[name][r, :steps], executed[r, :steps], err_msg=f"{name} row {r}")
      mixed |= 0 < int(np.sum(executed[r, :steps])) < steps
  assert mixed  # the policy really executed some tokens and skipped others


def _perturb_future(tokens, start, seed):
  noise = jax.random.randint(jax.random.PRNGKey(seed), tokens.shape, 2, 97)
  return tokens.at[:, start:].set(noise[:, start:])


@pytest.mark.parametrize("policy,training", [
    ("gumbel", False), ("threshold", False), ("random", False), ("random", True), ("early_exit", False),
    ("early_exit", True), ("expert_choice", False)])
def test_causal_policies_ignore_later_tokens(policy, training):
  model, params = _model(policy, "gather", False)  # capacity binds: position-ordered overflow must stay causal
  tokens, cut = random_tokens(3, 16), 9
  batches = [{"decoder_input_tokens": t} for t in (tokens, _perturb_future(tokens, cut, 5))]
  rng = jax.random.PRNGKey(11) if training else None
  base, changed = (_jitted(model, "logits")(params, b, rng) for b in batches)
  np.testing.assert_allclose(base[:, :cut], changed[:, :cut], atol=1e-6)
  assert float(jnp.max(jnp.abs(base[:, cut:] - changed[:, cut:]))) > 1e-3  # the future did change
  if not training:
    before, after = (_jitted(model, "decisions")(params, b) for b in batches)
    for name in before:
      np.testing.assert_array_equal(before[name][:, :cut], after[name][:, :cut], err_msg=name)


@pytest.mark.parametrize("skip_ratio", [0.5, 0.75])
def test_random_skipping_has_no_router_and_holds_its_ratio(skip_ratio):
  model = DecoderOnlyModel(tiny_config(routed="layer", policy="random", dispatch="masked", skip_ratio=skip_ratio))
  params = init_params(model)
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  assert paths and not [p for p in paths if "router" in p or "skip_layer" in p]
  tokens = random_tokens(8, 512, seed=3)  # 4096 tokens
  batch = {"decoder_input_tokens": tokens, "decoder_target_tokens": tokens}
  metrics_fn = jax.jit(lambda p, b, rng: model.loss_fn(p, b, rng)[1])
  target = 1.0 - skip_ratio
  for rng in (jax.random.PRNGKey(4), None):  # training draws, evaluation hashes
    metrics = metrics_fn(params, batch, rng)
    assert float(metrics["router/aux_loss"]) == 0.0 and float(metrics["router/z_loss"]) == 0.0
    densities = [float(v) for k, v in metrics.items() if k.startswith("router/density/")]
    assert len(densities) == 2
    assert abs(np.mean(densities) - target) < 0.02, (rng, densities)
  # the evaluation hash is a fixed function of (seed, layer, position, token): a batch's rows do not interact
  full = _jitted(model, "decisions")(params, {"decoder_input_tokens": tokens[:2, :64]})
  alone = _jitted(model, "decisions")(params, {"decoder_input_tokens": tokens[1:2, :64]})
  for name in full:
    np.testing.assert_array_equal(full[name][1:2], alone[name])
  other_seed = DecoderOnlyModel(tiny_config(routed="layer", policy="random", skip_ratio=skip_ratio, seed=1))
  reseeded = _jitted(other_seed, "decisions")(params, {"decoder_input_tokens": tokens[:2, :64]})
  assert any(not np.array_equal(full[k], reseeded[k]) for k in full)


def assert_monotone_over_depth(decisions, token_mask=None):
  """Early exit: a token that skipped routed module l skips every later one."""
  names = sorted(decisions)
  stacked = np.stack([np.asarray(decisions[n]) for n in names])  # [modules, batch, length]
  assert np.all(stacked[1:] <= stacked[:-1]), names
  if token_mask is not None:
    assert not np.any(stacked & ~np.asarray(token_mask, bool)[None])
  return stacked


@pytest.mark.parametrize("dispatch_mode,scan", [("masked", False), ("gather", True)])
def test_early_exit_decisions_are_monotone_on_random_inputs(dispatch_mode, scan):
  model = DecoderOnlyModel(tiny_config(routed="layer", policy="early_exit", dispatch=dispatch_mode, num_layers=4,
                                       scan_layers=scan, capacity_factor=1.5))
  forward = jax.jit(lambda p, b, rng: model._forward(p, b, rng)[1])
  exits_mid_depth = False
  for seed in range(2):
    params = set_routers(init_params(model, seed=seed), kernel_scale=0.5, execute_bias=1.5, seed=seed)
    tokens = random_tokens(4, 24, seed=seed)
    batch = {"decoder_input_tokens": tokens, "decoder_target_tokens": tokens.at[:, 20:].set(0)}  # some padding
    for rng in (None, jax.random.PRNGKey(seed)):
      stats = forward(params, batch, rng)
      real = np.broadcast_to(np.arange(24) < 20, (4, 24))
      stacked = assert_monotone_over_depth({k: v["execute"] for k, v in stats.items()}, real)
      exits_mid_depth |= bool(np.any(stacked[0] & ~stacked[-1]))
  assert exits_mid_depth  # tokens leave at different depths, not all at the first routed layer


@pytest.mark.slow
def test_early_exit_stays_monotone_after_training():
  model = DecoderOnlyModel(tiny_config(routed="layer", policy="early_exit", dispatch="gather", num_layers=4,
                                       capacity_factor=1.5, aux_loss_weight=1.0))
  params, _ = train(model, init_params(model), 80, data=markov_batch, length=32)
  held = markov_batch(10_000, length=32)
  stacked = assert_monotone_over_depth(_jitted(model, "decisions")(params, held))
  assert np.any(stacked[0] & ~stacked[-1])  # tokens exit at different depths
  assert abs(float(stacked.mean()) - 0.5) < 0.15, stacked.mean(axis=(1, 2))  # the budget: mean density near P


def test_mod_predictor_learns_only_from_its_own_loss():
  model, params = _model("expert_choice", "gather", False)
  batch = markov_batch(0, length=16)
  grads = jax.jit(jax.grad(lambda p: model.loss_fn(p, batch, jax.random.PRNGKey(0))[1]["router/predictor_loss"]))(
      params)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    touched = float(jnp.max(jnp.abs(grad))) > 0
    assert touched == ("predictor" in jax.tree_util.keystr(path)), jax.tree_util.keystr(path)


@pytest.mark.slow
def test_mod_predictor_agrees_with_top_c_after_training():
  model = DecoderOnlyModel(tiny_config(routed="layer", policy="expert_choice", dispatch="gather", capacity_factor=1.0,
                                       aux_loss_weight=1.0))
  held = stacked_batches(4, first_step=10_000, data=markov_batch, length=64)  # held-out sequences
  held_metrics = jax.jit(jax.vmap(lambda p, b: model.loss_fn(p, b, None)[1], in_axes=(None, 0)))
  params = init_params(model)
  before = float(jnp.mean(held_metrics(params, held)["router/predictor_agreement"]))
  params, _ = train(model, params, 150, data=markov_batch, length=64)
  metrics = held_metrics(params, held)
  agreement = float(jnp.mean(metrics["router/predictor_agreement"]))
  assert agreement >= 0.9 > before, (before, agreement)
  assert abs(float(jnp.mean(metrics["router/density"])) - 0.5) < 0.05  # the predictor holds MoD's budget
