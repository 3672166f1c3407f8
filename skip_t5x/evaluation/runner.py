"""`ModelRunner`: the model API as seqio's score/predict functions, sharded like training.

`ModelRunner` turns the model API (docs/interfaces.md) into seqio's score/predict functions: it batches the
Evaluator's (index, features) stream into fixed global batches (the last one padded), feeds each process its
slice of every batch (parallel.make_global_batch), runs one jitted program per function under the mesh, and
returns replicated results so every process sees all of them. Every process iterates the same eval data in the
same order; only process 0 writes files.
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
    parallel.check_batch_divisible(batch_size, mesh)
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

  def predict_fn(self, dataset: tf.data.Dataset, model_feature_shapes=None) -> List[Tuple[int, np.ndarray]]:
    """seqio predict_fn: (index, generated token ids [max_decode_length]) per example."""
    del model_feature_shapes
    return [(i, np.asarray(t, np.int32)) for i, t in self._run(self._predict, dataset, "generated")]

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
