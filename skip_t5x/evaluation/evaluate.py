"""`evaluate()` (gin: ``evaluate.*``): 1-shot scores of MODEL_DIR's checkpoint through seqio.Evaluator.

Restores the latest (or a given) checkpoint onto the mesh, runs the Evaluator over a task or mixture with a
`ModelRunner`, and writes DIR/eval/ (seqio's JSON logs, summary.json, summary.md; see summary.py).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import gin
import jax
import seqio
import tensorflow as tf

from skip_t5x import parallel
from skip_t5x.evaluation import calibration as calibration_lib
from skip_t5x.evaluation import summary as summary_lib
from skip_t5x.evaluation.runner import ModelRunner, task_decode_lengths
from skip_t5x.training import checkpoints as checkpoints_lib


def check_feature_lengths(task_feature_lengths: Optional[Mapping[str, int]]) -> Optional[Dict[str, int]]:
  if task_feature_lengths is None:
    return None
  lengths = dict(task_feature_lengths)
  if set(lengths) != {"inputs", "targets"} or any(int(v) <= 0 for v in lengths.values()):
    raise ValueError(f"eval task_feature_lengths={lengths!r} must be positive {{'inputs': I, 'targets': T}}")
  return {k: int(v) for k, v in lengths.items()}


def build_evaluator(mixture_or_task_name: str, lengths: Optional[Dict[str, int]], output_dir: str
                    ) -> seqio.Evaluator:
  """seqio's Evaluator over the task's 'validation' split; only process 0 logs (JSON) to `output_dir`."""
  is_writer = jax.process_index() == 0
  if is_writer:
    tf.io.gfile.makedirs(output_dir)
  evaluator = seqio.Evaluator(
      mixture_or_task_name=mixture_or_task_name,
      feature_converter=seqio.PrefixLMFeatureConverter(pack=False),
      eval_split="validation",
      sequence_length=lengths,
      logger_cls=[seqio.JSONLogger] if is_writer else [],
      log_dir=output_dir if is_writer else None,
      use_memory_cache=True,
      async_compute_metrics=False,
  )
  if not evaluator.eval_tasks:
    raise ValueError(f"{mixture_or_task_name!r} has no task with a 'validation' split and metrics")
  return evaluator


def measure_density(runner: ModelRunner, evaluator: seqio.Evaluator, max_batches: int) -> None:
  """The routers' deterministic execute density over up to `max_batches` full batches of the eval data."""
  for task in evaluator.eval_tasks:
    if runner.density_batches >= max_batches:
      break
    runner.measure_density(evaluator.cached_model_datasets[task.name], max_batches - runner.density_batches)


@gin.configurable
def evaluate(model=gin.REQUIRED,
             model_dir: str = gin.REQUIRED,
             mixture_or_task_name: str = gin.REQUIRED,
             task_feature_lengths: Optional[Mapping[str, int]] = None,
             batch_size: int = 32,
             max_decode_length: int = 32,
             mesh: Optional[parallel.MeshConfig] = None,
             checkpoint_step: Optional[int] = None,
             density_batches: int = 8,
             calibration_batches: int = 8,
             output_dir: Optional[str] = None,
             params: Any = None) -> Dict[str, Any]:
  """Evaluates the checkpoint of MODEL_DIR (latest, or `checkpoint_step`) on a task or mixture.

  task_feature_lengths: {'inputs': I, 'targets': T}; prompts keep their last I tokens. None measures the
  longest example instead (no truncation). `params` (already on the mesh) skips the restore. Returns the
  summary dict that is also written to OUTPUT_DIR (default MODEL_DIR/eval)/summary.json.
  """
  from skip_t5x.data import sources  # pylint: disable=import-outside-toplevel
  from skip_t5x.data import vocab as vocab_lib  # pylint: disable=import-outside-toplevel

  lengths = check_feature_lengths(task_feature_lengths)
  elastic = check_evaluate_args(model, mixture_or_task_name, density_batches, calibration_batches)
  vocabulary = vocab_lib.vocabulary()
  placement = parallel.place_model(model, mesh, None, batch_size=batch_size, min_vocab_size=vocabulary.vocab_size)
  sources.set_tfds_data_dir()  # the gin knob, before any TFDS task is read
  output_dir = output_dir or os.path.join(model_dir, "eval")
  evaluator = build_evaluator(mixture_or_task_name, lengths, output_dir)
  sequence_length = int(evaluator.model_feature_shapes["decoder_input_tokens"][0])
  placement = placement.with_length(sequence_length)

  step = checkpoint_step
  if params is None:
    params, step = checkpoints_lib.restore_params(model_dir, placement.abstract_params(), checkpoint_step)
  calibration = None
  if elastic is not None:  # INFERENCE_SKIP_RATIO: thresholds calibrated on held-out batches (or reused)
    model, calibration = calibration_lib.load_or_calibrate(
        model, output_dir, step, calibration_lib.sharded_gaps_fn_factory(params, placement, batch_size),
        lambda: calibration_lib.evaluator_batches(evaluator, batch_size, calibration_batches))
  runner = ModelRunner(model, params, placement.mesh, placement.rules, batch_size, max_decode_length,
                       vocabulary.eos_id)
  runner.use_task_decode_lengths(evaluator.cached_model_datasets, task_decode_lengths(
      [task.name for task in evaluator.eval_tasks], max_decode_length))
  measure_density(runner, evaluator, density_batches)
  metrics_future, _ = evaluator.evaluate(compute_metrics=True, step=step, predict_fn=runner.predict_fn,
                                         score_fn=runner.score_fn)
  task_metrics = metrics_future.result()
  evaluator.close()

  return _summarize(task_metrics, mixture_or_task_name, step, model_dir, model, runner.mean_density,
                    sequence_length, output_dir, calibration)


def check_evaluate_args(model, mixture_or_task_name: str, density_batches: int, calibration_batches: int):
  """Raises ValueError naming a bad argument (before any data is read); returns INFERENCE_SKIP_RATIO or None."""
  if mixture_or_task_name not in seqio.TaskRegistry.names() | seqio.MixtureRegistry.names():
    raise ValueError(f"MIXTURE_OR_TASK_NAME={mixture_or_task_name!r} is not a registered task or mixture")
  if density_batches < 0:
    raise ValueError(f"evaluate.density_batches={density_batches} must be >= 0")
  elastic = getattr(getattr(getattr(model, "config", None), "routing", None), "inference_skip_ratio", None)
  if elastic is not None:
    calibration_lib.check_supported(model.config)
    if calibration_batches < 1:
      raise ValueError(f"evaluate.calibration_batches={calibration_batches} must be >= 1 with INFERENCE_SKIP_RATIO")
  return elastic


def _summarize(task_metrics, mixture_or_task_name: str, step, model_dir: str, model, density, sequence_length: int,
               output_dir: str, calibration) -> Dict[str, Any]:
  """The summary dict (with the elastic calibration when there is one), written by process 0."""
  summary = summary_lib.build_summary(
      task_metrics, mixture_or_task_name=mixture_or_task_name, step=step, model_dir=model_dir, density=density,
      flops_per_token=summary_lib.flops_per_token(model, density, sequence_length),
      model_config=getattr(model, "config", None))
  summary["output_dir"] = output_dir
  if calibration is not None:
    summary["elastic"] = {k: calibration[k] for k in ("target_skip_ratio", "realized_skip_ratio",
                                                      "trained_skip_ratio", "calibration_tokens")}
  if jax.process_index() == 0:
    summary_lib.write_summary(summary, output_dir)
  return summary
