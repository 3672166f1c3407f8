"""`ModelRunner`: the model API as seqio's score/predict functions, sharded like training.

`ModelRunner` turns the model API (docs/interfaces.md) into seqio's score/predict functions: it batches the
Evaluator's (index, features) stream into fixed global batches (the last one padded), feeds each process its
slice of every batch (parallel.make_global_batch), runs one jitted program per function under the mesh, and
returns replicated results so every process sees all of them. Every process iterates the same eval data in the
same order; only process 0 writes files. Generation decodes as the gin-configured `DecodeConfig` says (default:
prefill, then greedy with early stop; `DecodeConfig.beam_size = %BEAM_SIZE` for beam search), for as many tokens
as each task declares (`task_decode_lengths`, at most max_decode_length).
"""
from __future__ import annotations

import functools
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import jax
import numpy as np
import seqio
import tensorflow as tf
from jax.sharding import NamedSharding, PartitionSpec

from skip_t5x import parallel
from skip_t5x.model.decoding import DecodeConfig

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

  def __init__(self, model, params, mesh, rules, batch_size: int, max_decode_length: int, eos_id: int,
               decode_config: Optional[DecodeConfig] = None):
    """decode_config: None reads the gin bindings of DecodeConfig (prefill + greedy unless configured)."""
    parallel.check_batch_divisible(batch_size, mesh)
    if max_decode_length <= 0:
      raise ValueError(f"max_decode_length={max_decode_length} must be positive")
    self.model, self.params, self.mesh, self.rules = model, params, mesh, rules
    self.batch_size = batch_size
    self.max_decode_length, self.eos_id = max_decode_length, eos_id
    self.decode_config = (DecodeConfig() if decode_config is None else decode_config).validate()
    self._replicated = replicated = NamedSharding(mesh, PartitionSpec())
    self._score = jax.jit(model.score_batch, out_shardings=replicated)
    self._predict_by_length: Dict[int, Callable] = {}  # one compiled generation per decode length
    self._decode_length_by_dataset: Dict[int, int] = {}  # id(task dataset) -> its decode length
    self._loss_metrics = jax.jit(lambda p, b: model.loss_fn(p, b, None)[1], out_shardings=replicated)
    self.density_sum = 0.0
    self.density_batches = 0

  def _global(self, batch: Mapping[str, np.ndarray]) -> dict:
    """This process's rows of a global batch -> global sharded arrays."""
    per_process = self.batch_size // jax.process_count()
    start = jax.process_index() * per_process
    local = {k: v[start:start + per_process] for k, v in batch.items()}
    return parallel.make_global_batch(local, self.mesh, self.rules)

  def _run(self, fn: Callable, dataset: tf.data.Dataset, what: str) -> List[Tuple[int, Any]]:
    outputs = []
    start = time.time()
    with parallel.mesh_context(self.mesh, self.rules):
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

  def use_task_decode_lengths(self, datasets: Mapping[str, tf.data.Dataset], lengths: Mapping[str, int]) -> None:
    """Generation for datasets[task] (the Evaluator's cached dataset) decodes lengths[task] tokens."""
    for task, length in lengths.items():
      if task in datasets:
        self._decode_length_by_dataset[id(datasets[task])] = int(length)

  def _predict(self, max_decode_length: int) -> Callable:
    if max_decode_length not in self._predict_by_length:
      self._predict_by_length[max_decode_length] = jax.jit(functools.partial(
          self.model.predict_batch, max_decode_length=max_decode_length, eos_id=self.eos_id,
          decode_config=self.decode_config), out_shardings=self._replicated)
    return self._predict_by_length[max_decode_length]

  def predict_fn(self, dataset: tf.data.Dataset, model_feature_shapes=None) -> List[Tuple[int, np.ndarray]]:
    """seqio predict_fn: (index, generated token ids [the task's decode length]) per example."""
    del model_feature_shapes
    predict = self._predict(self._decode_length_by_dataset.get(id(dataset), self.max_decode_length))
    return [(i, np.asarray(t, np.int32)) for i, t in self._run(predict, dataset, "generated")]

  def measure_density(self, dataset: tf.data.Dataset, max_batches: int) -> None:
    """Accumulates the routers' execute density (deterministic routing) over up to `max_batches` batches."""
    with parallel.mesh_context(self.mesh, self.rules):
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


def task_decode_lengths(task_names, max_decode_length: int) -> Dict[str, int]:
  """{task: tokens to generate}: the task's declared decode length (the data side's TaskSpec.max_decode_length,
  where it exposes one) capped at max_decode_length; {} when the data side declares none."""
  from skip_t5x.data import fewshot_tasks  # pylint: disable=import-outside-toplevel

  declared = getattr(fewshot_tasks, "max_decode_length", None)
  if declared is None:
    return {}
  return {name: max(1, min(int(declared(name, max_decode_length)), max_decode_length)) for name in task_names}
