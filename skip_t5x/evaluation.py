"""1-shot evaluation of a DecoderOnlyModel through seqio.Evaluator, sharded like training.

`ModelRunner` turns the model API (docs/interfaces.md) into seqio's score/predict functions: it batches the
Evaluator's (index, features) stream into fixed global batches (the last one padded), feeds each process its
slice of every batch (partitioning.make_global_batch), runs one jitted program per function under the mesh, and
returns replicated results so every process sees all of them. Every process iterates the same eval data in the
same order; only process 0 writes files.

`evaluate` (gin-configurable) restores the latest checkpoint of MODEL_DIR onto the mesh, runs the Evaluator over
a task or mixture and writes DIR/eval/ (seqio's JSON logs, summary.json, summary.md; see eval_summary.py).
"""
from __future__ import annotations

import functools
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import gin
import jax
import numpy as np
import seqio
import tensorflow as tf
from jax.sharding import NamedSharding, PartitionSpec

from skip_t5x import checkpoints as checkpoints_lib
from skip_t5x import eval_summary
from skip_t5x import partitioning
from skip_t5x import trainer as trainer_lib

PROGRESS_EVERY_BATCHES = 5  # the runner prints how far each task's scoring or generation has got
MODEL_FEATURES = ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights",
                  "decoder_causal_attention")


def batches_of(dataset: tf.data.Dataset, batch_size: int) -> Iterator[Tuple[List[int], Dict[str, np.ndarray]]]:
  """(indices, batch) from an enumerated seqio eval dataset; the last batch is padded with all-zero rows (its
  indices list is shorter than the batch)."""
  indices: List[int] = []
  rows: List[Mapping[str, np.ndarray]] = []

  def stacked() -> Dict[str, np.ndarray]:
    batch = {k: np.stack([np.asarray(r[k], np.int32) for r in rows]) for k in MODEL_FEATURES if k in rows[0]}
    pad = batch_size - len(rows)
    return {k: np.pad(v, ((0, pad), (0, 0))) for k, v in batch.items()}

  for index, features in dataset.as_numpy_iterator():
    indices.append(int(index))
    rows.append(features)
    if len(rows) == batch_size:
      yield indices, stacked()
      indices, rows = [], []
  if rows:
    yield indices, stacked()


class ModelRunner:
  """Jitted, sharded score/predict/density functions of one model and its params on one mesh."""

  def __init__(self, model, params, mesh, rules, batch_size: int, max_decode_length: int, eos_id: int):
    partitioning.check_batch_divisible(batch_size, mesh)
    if max_decode_length <= 0:
      raise ValueError(f"max_decode_length={max_decode_length} must be positive")
    self.model, self.params, self.mesh, self.rules = model, params, mesh, rules
    self.batch_size = batch_size
    replicated = NamedSharding(mesh, PartitionSpec())
    self._score = jax.jit(model.score_batch, out_shardings=replicated)
    self._predict = jax.jit(functools.partial(model.predict_batch, max_decode_length=max_decode_length,
                                              eos_id=eos_id), out_shardings=replicated)
    self._loss_metrics = jax.jit(lambda p, b: model.loss_fn(p, b, None)[1], out_shardings=replicated)
    self.density_sum = 0.0
    self.density_batches = 0

  def _global(self, batch: Mapping[str, np.ndarray]) -> dict:
    """This process's rows of a global batch -> global sharded arrays."""
    per_process = self.batch_size // jax.process_count()
    start = jax.process_index() * per_process
    local = {k: v[start:start + per_process] for k, v in batch.items()}
    return partitioning.make_global_batch(local, self.mesh, self.rules)

  def _run(self, fn: Callable, dataset: tf.data.Dataset, what: str) -> List[Tuple[int, Any]]:
    outputs = []
    start = time.time()
    with trainer_lib.mesh_context(self.mesh, self.rules):
      for count, (indices, batch) in enumerate(batches_of(dataset, self.batch_size), start=1):
        result = np.asarray(jax.device_get(fn(self.params, self._global(batch))))
        outputs.extend(zip(indices, result[:len(indices)]))
        if jax.process_index() == 0 and count % PROGRESS_EVERY_BATCHES == 0:
          print(f"  {what}: {len(outputs)} examples, {len(outputs) / (time.time() - start):.1f}/s",
                flush=True)
    return outputs

  def score_fn(self, dataset: tf.data.Dataset, model_feature_shapes=None) -> List[Tuple[int, float]]:
    """seqio score_fn: (index, log-likelihood of the targets) per example."""
    del model_feature_shapes
    return [(i, float(s)) for i, s in self._run(self._score, dataset, "scored")]

  def predict_fn(self, dataset: tf.data.Dataset, model_feature_shapes=None) -> List[Tuple[int, np.ndarray]]:
    """seqio predict_fn: (index, generated token ids [max_decode_length]) per example."""
    del model_feature_shapes
    return [(i, np.asarray(t, np.int32)) for i, t in self._run(self._predict, dataset, "generated")]

  def measure_density(self, dataset: tf.data.Dataset, max_batches: int) -> None:
    """Accumulates the routers' execute density (deterministic routing) over up to `max_batches` batches."""
    with trainer_lib.mesh_context(self.mesh, self.rules):
      for count, (indices, batch) in enumerate(batches_of(dataset, self.batch_size)):
        if count >= max_batches or len(indices) < self.batch_size:
          break  # padded rows would dilute the density
        metrics = jax.device_get(self._loss_metrics(self.params, self._global(batch)))
        if "router/density" in metrics:
          self.density_sum += float(metrics["router/density"])
          self.density_batches += 1

  @property
  def mean_density(self) -> Optional[float]:
    return self.density_sum / self.density_batches if self.density_batches else None


def abstract_params(model, mesh, rules, sequence_length: int):
  """ShapeDtypeStructs of the params, with the shardings training uses (nothing is allocated)."""
  shapes = {"decoder_input_tokens": (partitioning.data_parallel_size(mesh), sequence_length)}
  with trainer_lib.mesh_context(mesh, rules):
    boxed = jax.eval_shape(lambda rng: model.get_initial_variables(rng, input_shapes=shapes)["params"],
                           jax.random.key(0))
  shardings = partitioning.tree_shardings(boxed, mesh, rules)
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      partitioning.strip_boxes(boxed), shardings)


def check_feature_lengths(task_feature_lengths: Optional[Mapping[str, int]]) -> Optional[Dict[str, int]]:
  if task_feature_lengths is None:
    return None
  lengths = dict(task_feature_lengths)
  if set(lengths) != {"inputs", "targets"} or any(int(v) <= 0 for v in lengths.values()):
    raise ValueError(f"eval task_feature_lengths={lengths!r} must be positive {{'inputs': I, 'targets': T}}")
  return {k: int(v) for k, v in lengths.items()}


@gin.configurable
def evaluate(model=gin.REQUIRED,
             model_dir: str = gin.REQUIRED,
             mixture_or_task_name: str = gin.REQUIRED,
             task_feature_lengths: Optional[Mapping[str, int]] = None,
             batch_size: int = 32,
             max_decode_length: int = 32,
             mesh: Optional[partitioning.MeshConfig] = None,
             checkpoint_step: Optional[int] = None,
             density_batches: int = 8,
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
  if mixture_or_task_name not in seqio.TaskRegistry.names() | seqio.MixtureRegistry.names():
    raise ValueError(f"MIXTURE_OR_TASK_NAME={mixture_or_task_name!r} is not a registered task or mixture")
  if density_batches < 0:
    raise ValueError(f"evaluate.density_batches={density_batches} must be >= 0")
  sources.set_tfds_data_dir()  # the gin knob, before any TFDS task is read
  output_dir = output_dir or os.path.join(model_dir, "eval")
  mesh_config = mesh or partitioning.MeshConfig()
  device_mesh = partitioning.create_mesh(mesh_config)
  rules = mesh_config.rules()
  partitioning.check_batch_divisible(batch_size, device_mesh)

  vocabulary = vocab_lib.vocabulary()
  vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
  if vocab_size is not None and vocab_size < vocabulary.vocab_size:
    raise ValueError(f"model vocab_size={vocab_size} is smaller than the vocabulary's {vocabulary.vocab_size} "
                     f"({vocabulary}); set VOCAB_SIZE >= {vocabulary.vocab_size}")

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
  sequence_length = int(evaluator.model_feature_shapes["decoder_input_tokens"][0])

  step = checkpoint_step
  if params is None:
    params, step = checkpoints_lib.restore_params(
        model_dir, abstract_params(model, device_mesh, rules, sequence_length), checkpoint_step)
  runner = ModelRunner(model, params, device_mesh, rules, batch_size, max_decode_length, vocabulary.eos_id)
  for task in evaluator.eval_tasks:
    if runner.density_batches >= density_batches:
      break
    runner.measure_density(evaluator.cached_model_datasets[task.name],
                           density_batches - runner.density_batches)
  metrics_future, _ = evaluator.evaluate(compute_metrics=True, step=step, predict_fn=runner.predict_fn,
                                         score_fn=runner.score_fn)
  task_metrics = metrics_future.result()
  evaluator.close()

  summary = eval_summary.build_summary(
      task_metrics, mixture_or_task_name=mixture_or_task_name, step=step, model_dir=model_dir,
      density=runner.mean_density, flops_per_token=eval_summary.flops_per_token(model, runner.mean_density, sequence_length),
      model_config=getattr(model, "config", None))
  summary["output_dir"] = output_dir
  if is_writer:
    eval_summary.write_summary(summary, output_dir)
  return summary
