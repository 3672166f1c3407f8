"""Elastic skip ratio at inference: thresholds calibrated on held-out batches run a model trained at skip ratio 0.5
at another ratio r, measured on other held-out batches; r = 0 is the dense computation of the same weights."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skip_t5x.evaluation import calibration as calibration_lib
from skip_t5x.model.decoder_only import DecoderOnlyModel
from tests.model.short_training import markov_batch, train
from tests.model_helpers import init_params, set_routers, strip_routers, tiny_config

LENGTH = 64
CALIBRATION = [markov_batch(20_000 + i, length=LENGTH) for i in range(4)]  # held-out: never trained on
EVALUATION = [markov_batch(30_000 + i, length=LENGTH) for i in range(4)]  # held-out, not used to calibrate


@pytest.fixture(scope="module")
def trained():
  """A tiny model of the method (gumbel routers) trained at skip ratio 0.5."""
  model = DecoderOnlyModel(tiny_config(routed="layer", policy="gumbel", dispatch="masked", aux_loss_weight=1.0))
  params, _ = train(model, init_params(model), 150, data=markov_batch, length=LENGTH)
  return model, params


def _calibrated(model, params, ratio):
  sized = model.with_routing(inference_skip_ratio=ratio)
  gaps_fn = calibration_lib.model_gaps_fn(sized, params)
  calibration = calibration_lib.calibrate(gaps_fn, CALIBRATION, ratio, modules=model.config.routed_module_names(),
                                          policy=model.config.routing.policy)
  return calibration_lib.elastic_model(model, calibration), calibration


def _realized_skip(model, params, batches=EVALUATION):
  """1 - router/density of the deterministic loss_fn (what the evaluation summary reports), over `batches`."""
  metrics = jax.jit(lambda p, b: model.loss_fn(p, b, None)[1])
  return 1.0 - float(np.mean([metrics(params, b)["router/density"] for b in batches]))


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_requested_ratio_is_realized_on_held_out_data(trained, ratio):
  model, params = trained
  elastic, calibration = _calibrated(model, params, ratio)
  assert abs(calibration["realized_skip_ratio"] - ratio) < 0.01  # on the calibration batches themselves
  assert abs(_realized_skip(elastic, params) - ratio) < 0.03
  if ratio == 0.25:  # gather dispatch, its capacity sized for 1 - r
    gather = elastic.with_routing(dispatch="gather", capacity_factor=1.25)
    assert abs(_realized_skip(gather, params) - ratio) < 0.03


@pytest.mark.slow
@pytest.mark.parametrize("dispatch_mode", ["masked", "gather"])
def test_ratio_zero_is_the_dense_computation_of_the_same_weights(trained, dispatch_mode):
  model, params = trained
  elastic, _ = _calibrated(model.with_routing(dispatch=dispatch_mode), params, 0.0)
  batch = EVALUATION[0]
  decisions = jax.jit(elastic.routing_decisions)(params, batch)
  assert decisions and all(bool(np.all(v)) for v in decisions.values())
  dense = DecoderOnlyModel(tiny_config(routed="none"))
  forward = lambda m, p: jax.jit(lambda p, b: m._forward(p, b, None)[0])(p, batch)
  np.testing.assert_allclose(forward(elastic, params), forward(dense, strip_routers(params)), atol=1e-5)
  assert _realized_skip(model, params) > 0.3  # as trained, the same weights do skip


@pytest.mark.parametrize("policy", ["threshold", "early_exit", "random", "expert_choice"])
def test_every_causal_policy_calibrates(policy):
  model = DecoderOnlyModel(tiny_config(routed="layer", policy=policy, dispatch="masked"))
  params = set_routers(init_params(model), kernel_scale=0.5, execute_bias=0.5)  # spread-out router gaps
  gaps_fn = calibration_lib.model_gaps_fn(model, params)  # masked dispatch: no capacity to size
  modules = model.config.routed_module_names()
  for ratio in (0.25, 0.75):
    calibration = calibration_lib.calibrate(gaps_fn, CALIBRATION[:2], ratio, modules=modules, policy=policy)
    held_out = calibration_lib.realized_skip_ratio(gaps_fn, EVALUATION[:2], np.asarray(calibration["thresholds"]))
    assert abs(held_out - ratio) < 0.03, (policy, ratio, calibration)
    if policy == "early_exit":
      assert len(set(calibration["thresholds"])) == 1  # one cut shared over depth keeps decisions monotone


def test_unsupported_models_are_refused_by_name():
  with pytest.raises(ValueError, match="INFERENCE_SKIP_RATIO"):
    calibration_lib.check_supported(tiny_config(routed="none", inference_skip_ratio=0.5))
  with pytest.raises(ValueError, match="predictor_dim=0"):
    calibration_lib.check_supported(tiny_config(policy="expert_choice", predictor_dim=0, inference_skip_ratio=0.5))
  with pytest.raises(ValueError, match="INFERENCE_SKIP_RATIO=1.0"):
    calibration_lib.calibrate(lambda b, t: {}, CALIBRATION, 1.0, modules=["layer_00"], policy="gumbel")


def test_calibration_is_saved_beside_the_eval_output_and_reused(tmp_path):
  model = DecoderOnlyModel(tiny_config(routed="layer", inference_skip_ratio=0.25))
  params = set_routers(init_params(model), kernel_scale=0.5, execute_bias=0.5)
  calls = []

  def factory(sized):
    assert sized.config.routing.inference_skip_ratio == 0.25 and sized.config.routing.gap_thresholds is None
    calls.append(sized)
    return calibration_lib.model_gaps_fn(sized, params)

  out = str(tmp_path / "eval")
  elastic, first = calibration_lib.load_or_calibrate(model, out, 7, factory, lambda: CALIBRATION[:2])
  with open(os.path.join(out, calibration_lib.CALIBRATION_JSON)) as f:
    written = json.load(f)
  assert written["thresholds"] == first["thresholds"] and written["checkpoint_step"] == 7 and len(calls) == 1
  assert elastic.config.routing.gap_thresholds == tuple(first["thresholds"])
  again, second = calibration_lib.load_or_calibrate(model, out, 7, factory, lambda: CALIBRATION[:2])
  assert len(calls) == 1 and second == written and again.config == elastic.config  # reused, not recomputed
  calibration_lib.load_or_calibrate(model, out, 8, factory, lambda: CALIBRATION[:2])  # a new checkpoint
  assert len(calls) == 2
  assert calibration_lib.load_for_inference(model, str(tmp_path), 8).config.routing.gap_thresholds
  with pytest.raises(ValueError, match="run eval with the same INFERENCE_SKIP_RATIO"):
    calibration_lib.load_for_inference(model.with_routing(inference_skip_ratio=0.5), str(tmp_path), 8)


@pytest.mark.slow
def test_evaluate_runs_at_the_inference_skip_ratio_and_reports_it(tmp_path):
  import gin
  import flax.linen as nn

  from skip_t5x import cli, gin_utils
  from skip_t5x.evaluation import evaluate as evaluation

  cli.import_registrations()
  gin.clear_config()
  model_dir = str(tmp_path)
  bindings = ["INFERENCE_SKIP_RATIO = 0.25", "EVAL_TASK_FEATURE_LENGTHS = {'inputs': 64, 'targets': 16}",
              "EVAL_BATCH_SIZE = 8", "MAX_DECODE_LENGTH = 2", "VOCAB_SIZE = 2048",
              "skip_t5x.data.embedded_eval.embedded_eval_options.max_items = 4", "evaluate.calibration_batches = 2"]
  try:
    gin_utils.parse_gin(["models/skip_tiny.gin", "runs/demo_eval.gin"], bindings,
                        extra_bindings={"MODEL_DIR": model_dir}, finalize=False)
    model = gin_utils.evaluate_macro("MODEL")
    params = jax.device_get(nn.unbox(model.get_initial_variables(
        jax.random.PRNGKey(0), {"decoder_input_tokens": (1, 80)})["params"]))
    summary = evaluation.evaluate(params=params)
    path = os.path.join(model_dir, "eval", calibration_lib.CALIBRATION_JSON)
    written = os.path.getmtime(path)
    again = evaluation.evaluate(params=params)
  finally:
    gin.clear_config()
  assert summary["target_skip_ratio"] == 0.25 and summary["elastic"]["target_skip_ratio"] == 0.25
  assert summary["elastic"]["trained_skip_ratio"] == 0.5
  assert abs(summary["elastic"]["realized_skip_ratio"] - 0.25) < 0.01  # on the calibration batches
  assert abs(summary["realized_skip_ratio"] - 0.25) < 0.05  # on the evaluation data
  assert summary["flops_per_token"]["routed"] < summary["flops_per_token"]["dense"]
  assert os.path.getmtime(path) == written and again["elastic"] == summary["elastic"]  # reused
  with open(os.path.join(model_dir, "eval", "summary.md")) as f:
    assert "Elastic inference: trained at skip ratio 0.500, run at 0.250" in f.read()
