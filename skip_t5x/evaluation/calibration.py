"""Elastic skip ratio at inference: run a model trained at one skip ratio at another (INFERENCE_SKIP_RATIO = r).

Every routing policy has a deterministic score per token and routed module, its *gap* (the router's execute - skip
logit for 'gumbel', 'threshold' and 'early_exit'; the predictor's logit for Mixture-of-Depths; the hash number for
'random'); a token executes when its gap is above the module's threshold (layers/policies.py). Calibration runs
the model deterministically over held-out batches and picks one threshold per routed module so that the realized
skip ratio is r:

- modules in depth order, each threshold the r-quantile of that module's gaps over the real tokens, computed with
  the thresholds of the earlier modules already applied (a module's input depends on what earlier ones skipped);
- early exit: decisions are monotone over depth, so per-module quantiles would make every token exit at the first
  routed module; one threshold shared by every module is searched (bisection) so that the mean skip ratio over the
  routed modules is r, which keeps the trained model's profile of exits over depth;
- r = 0: every threshold below every gap (EXECUTE_ALL): every token executes, the dense computation of the same
  weights.
The model is given the thresholds as RoutingConfig.gap_thresholds (and its gather capacity is sized for 1 - r
through RoutingConfig.inference_skip_ratio). evaluate() saves the calibration as DIR/eval/calibration.json and reuses
it when its ratio, policy, modules and checkpoint step match; infer() reads it from there.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from skip_t5x import parallel
from skip_t5x.evaluation import runner as runner_lib
from skip_t5x.layers.policies import EXECUTE_ALL

CALIBRATION_JSON = "calibration.json"
BISECTION_STEPS = 30
# (batch, thresholds [num_routed] float32) -> DecoderOnlyModel.routing_gaps' dict as host numpy arrays
GapsFn = Callable[[Any, np.ndarray], Dict[str, Any]]


def check_supported(config) -> None:
  """ValueError naming the setting when elastic inference cannot apply to `config` (a DecoderConfig)."""
  rc = config.routing
  r = rc.inference_skip_ratio
  if r is not None and not 0.0 <= r < 1.0:
    raise ValueError(f"INFERENCE_SKIP_RATIO={r!r} must be None or in [0, 1)")
  if not rc.enabled:
    raise ValueError(f"INFERENCE_SKIP_RATIO={r!r} needs a routed model; this one has no routers "
                     f"(ROUTED={rc.routed!r}, SKIP_RATIO={rc.skip_ratio!r})")
  if rc.policy == "expert_choice" and not rc.has_predictor:
    raise ValueError("INFERENCE_SKIP_RATIO needs a causal decision score: routing policy 'expert_choice' without "
                     "a predictor (predictor_dim=0) has none")


def model_gaps_fn(model, params) -> GapsFn:
  """A GapsFn for one host: the model's routing_gaps, jitted with the thresholds as an input (one compile)."""
  gaps = jax.jit(model.routing_gaps)
  return lambda batch, thresholds: jax.device_get(gaps(params, batch, jnp.asarray(thresholds, jnp.float32)))


def _run(gaps_fn: GapsFn, batches: Sequence[Any], thresholds: np.ndarray):
  """(gaps {module: 1-D over real tokens}, executed {module: count}, real tokens) over all batches."""
  gaps: Dict[str, List[np.ndarray]] = {}
  executed: Dict[str, int] = {}
  real = 0
  for batch in batches:
    out = gaps_fn(batch, thresholds)
    mask = np.asarray(out["token_mask"], bool)  # [batch, length]
    real += int(mask.sum())
    for name, gap in out["gap"].items():
      gaps.setdefault(name, []).append(np.asarray(gap)[mask])
      executed[name] = executed.get(name, 0) + int(np.asarray(out["execute"][name])[mask].sum())
  return {k: np.concatenate(v) for k, v in gaps.items()}, executed, real


def realized_skip_ratio(gaps_fn: GapsFn, batches: Sequence[Any], thresholds: np.ndarray) -> float:
  """Mean over routed modules of the fraction of real tokens that skip them."""
  _, executed, real = _run(gaps_fn, batches, thresholds)
  return float(np.mean([1.0 - count / max(real, 1) for count in executed.values()]))


def quantile_threshold(gaps: np.ndarray, ratio: float) -> float:
  """A cut that skips round(ratio * N) of the N gaps (execute iff gap > cut): between the two neighbours."""
  ordered = np.sort(gaps.astype(np.float64))
  k = int(round(ratio * len(ordered)))
  if k <= 0:
    return EXECUTE_ALL
  if k >= len(ordered):
    return float(ordered[-1])
  return float((ordered[k - 1] + ordered[k]) / 2.0)


def _per_module_quantiles(gaps_fn, batches, ratio: float, modules: Sequence[str]) -> np.ndarray:
  thresholds = np.full(len(modules), np.nan, np.float32)  # NaN: the policy's own cut (not yet calibrated)
  for m, name in enumerate(modules):
    gaps, _, _ = _run(gaps_fn, batches, thresholds)
    thresholds[m] = quantile_threshold(gaps[name], ratio)
  return thresholds


def _shared_threshold(gaps_fn, batches, ratio: float, modules: Sequence[str]) -> np.ndarray:
  """Early exit: bisection on one threshold for every module until the mean skip ratio is `ratio`."""
  dense_gaps, _, _ = _run(gaps_fn, batches, np.full(len(modules), EXECUTE_ALL, np.float32))
  pooled = np.concatenate(list(dense_gaps.values()))
  low, high = float(pooled.min()) - 1.0, float(pooled.max()) + 1.0  # skip ratio 0 at low, 1 at high
  for _ in range(BISECTION_STEPS):
    middle = (low + high) / 2.0
    skipped = realized_skip_ratio(gaps_fn, batches, np.full(len(modules), middle, np.float32))
    if abs(skipped - ratio) < 1e-3:
      low = high = middle
      break
    low, high = (middle, high) if skipped < ratio else (low, middle)
  return np.full(len(modules), (low + high) / 2.0, np.float32)


def calibrate(gaps_fn: GapsFn, batches: Sequence[Any], target_skip_ratio: float, *, modules: Sequence[str],
              policy: str) -> Dict[str, Any]:
  """Thresholds [len(modules)] that make the realized skip ratio on `batches` equal `target_skip_ratio`.

  `gaps_fn` must run the model with its gather capacity sized for the target (inference_skip_ratio set).
  Returns a JSON-ready dict: target_skip_ratio, realized_skip_ratio (on these batches), policy, modules,
  thresholds, calibration_tokens.
  """
  if not 0.0 <= target_skip_ratio < 1.0:
    raise ValueError(f"INFERENCE_SKIP_RATIO={target_skip_ratio!r} must be in [0, 1)")
  if not batches:
    raise ValueError("elastic calibration needs at least one held-out batch")
  modules = list(modules)
  if target_skip_ratio == 0.0:
    thresholds = np.full(len(modules), EXECUTE_ALL, np.float32)
  elif policy == "early_exit":
    thresholds = _shared_threshold(gaps_fn, batches, target_skip_ratio, modules)
  else:
    thresholds = _per_module_quantiles(gaps_fn, batches, target_skip_ratio, modules)
  _, executed, real = _run(gaps_fn, batches, thresholds)
  return {
      "target_skip_ratio": float(target_skip_ratio),
      "realized_skip_ratio": float(np.mean([1.0 - executed[m] / max(real, 1) for m in modules])),
      "policy": policy,
      "modules": modules,
      "thresholds": [float(t) for t in thresholds],
      "calibration_tokens": real,
  }


def elastic_model(model, calibration: Dict[str, Any]):
  """`model` running at the calibrated skip ratio: same parameters, thresholds and capacity in its config."""
  return model.with_routing(inference_skip_ratio=calibration["target_skip_ratio"],
                            gap_thresholds=tuple(calibration["thresholds"]))


def matches(calibration: Optional[Dict[str, Any]], config, step: Optional[int]) -> bool:
  """Whether a saved calibration was made for this model, ratio and checkpoint step."""
  rc = config.routing
  return bool(calibration) and calibration.get("target_skip_ratio") == rc.inference_skip_ratio and (
      calibration.get("policy") == rc.policy and calibration.get("modules") == config.routed_module_names()
      and calibration.get("checkpoint_step") == step)


def load(path: str) -> Optional[Dict[str, Any]]:
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def save(calibration: Dict[str, Any], path: str) -> None:
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(calibration, f, indent=2, sort_keys=True)


def load_or_calibrate(model, output_dir: str, step: Optional[int], gaps_fn_factory: Callable[[Any], GapsFn],
                      batches: Callable[[], Iterable[Any]]):
  """(elastic model, calibration): OUTPUT_DIR/calibration.json when it matches, else calibrated (and saved)."""
  check_supported(model.config)
  path = os.path.join(output_dir, CALIBRATION_JSON)
  calibration = load(path)
  if not matches(calibration, model.config, step):
    target = model.config.routing.inference_skip_ratio
    sized = model.with_routing(gap_thresholds=None)  # capacity for 1 - r; thresholds traced by routing_gaps
    calibration = calibrate(gaps_fn_factory(sized), list(batches()), target,
                            modules=model.config.routed_module_names(), policy=model.config.routing.policy)
    calibration["checkpoint_step"] = step
    calibration["trained_skip_ratio"] = model.config.routing.skip_ratio
    if jax.process_index() == 0:
      save(calibration, path)
  return elastic_model(model, calibration), calibration


def sharded_gaps_fn_factory(params, placement: parallel.Placement, batch_size: int) -> Callable[[Any], GapsFn]:
  """GapsFn factory on the mesh: each process feeds its rows of the (host numpy) global batch."""
  replicated = jax.sharding.NamedSharding(placement.mesh, jax.sharding.PartitionSpec())
  per_process = batch_size // jax.process_count()
  start = jax.process_index() * per_process

  def factory(model) -> GapsFn:
    gaps = jax.jit(model.routing_gaps, out_shardings=replicated)

    def run(batch, thresholds):
      with placement.context():
        local = {k: v[start:start + per_process] for k, v in batch.items()}
        sharded = parallel.make_global_batch(local, placement.mesh, placement.rules)
        return jax.device_get(gaps(params, sharded, jnp.asarray(thresholds, jnp.float32)))
    return run
  return factory


def evaluator_batches(evaluator, batch_size: int, max_batches: int) -> List[Dict[str, np.ndarray]]:
  """Up to `max_batches` full batches of the eval tasks' inputs (targets only mark the real tokens)."""
  batches: List[Dict[str, np.ndarray]] = []
  for task in evaluator.eval_tasks:
    for indices, batch in runner_lib.batches_of(evaluator.cached_model_datasets[task.name], batch_size):
      if len(batches) >= max_batches or len(indices) < batch_size:
        break
      batches.append(batch)
  return batches


def load_for_inference(model, model_dir: str, step: Optional[int]):
  """infer(): the elastic model from MODEL_DIR/eval/calibration.json (calibrating needs held-out data)."""
  check_supported(model.config)
  path = os.path.join(model_dir, "eval", CALIBRATION_JSON)
  calibration = load(path)
  if not matches(calibration, model.config, step):
    raise ValueError(f"INFERENCE_SKIP_RATIO={model.config.routing.inference_skip_ratio!r}: no matching calibration "
                     f"at {path} (policy, modules and checkpoint step {step}); run eval with the same "
                     f"INFERENCE_SKIP_RATIO first, which calibrates on held-out data and writes it")
  return elastic_model(model, calibration)
