"""Per-host training batches from a seqio task or mixture, deterministic so that resuming is exact.

Each process reads its own shard of the data (``seqio.ShardInfo(process_index, process_count)``) and yields numpy
batches of ``batch_size / process_count`` rows; ``parallel.make_global_batch`` assembles them into global
arrays. With a fixed seed the stream of batches is a pure function of the config, so a resumed run skips exactly
the ``data_position`` batches already consumed (recorded in every checkpoint) and sees the same batches as an
uninterrupted run. ``TrainBatches`` is the stream a run consumes: its position is saved with every checkpoint
as a tf.data iterator checkpoint (training/data_state.py), so a resume reads no consumed batch again; skipping
ahead is the fallback when no saved position fits.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Dict, Iterator, Mapping, Optional

import gin
import numpy as np
import seqio
import tensorflow as tf


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DatasetConfig:
  """Which data to train on, in T5X terms.

  batch_size is the global batch (all hosts). task_feature_lengths e.g. {'targets': 512}. pack: seqio packing of
  several examples per row (adds decoder_segment_ids / decoder_positions).
  """

  mixture_or_task_name: str
  task_feature_lengths: Mapping[str, int]
  batch_size: int
  split: str = "train"
  shuffle: bool = True
  seed: Optional[int] = 0
  pack: bool = True
  use_cached: bool = False

  def validate(self) -> None:
    if not self.task_feature_lengths or any(int(v) <= 0 for v in self.task_feature_lengths.values()):
      raise ValueError(f"TASK_FEATURE_LENGTHS={dict(self.task_feature_lengths)!r} must be positive lengths")
    if "targets" not in self.task_feature_lengths:
      raise ValueError(f"TASK_FEATURE_LENGTHS={dict(self.task_feature_lengths)!r} needs a 'targets' length")
    if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
      raise ValueError(f"BATCH_SIZE={self.batch_size!r} must be an integer")
    if self.batch_size <= 0:
      raise ValueError(f"BATCH_SIZE={self.batch_size} must be positive")

  @property
  def sequence_length(self) -> int:
    """Length of the decoder inputs (prefix-LM tasks concatenate inputs and targets)."""
    return int(sum(self.task_feature_lengths.values()))


def check_task_exists(name: str) -> None:
  """Raises ValueError naming the task when it is neither a registered seqio task nor a mixture."""
  if name not in seqio.TaskRegistry.names() and name not in seqio.MixtureRegistry.names():
    known = sorted(seqio.TaskRegistry.names())[:20]
    raise ValueError(f"MIXTURE_OR_TASK_NAME={name!r} is not a registered seqio task or mixture "
                     f"(registered tasks include {known}); is the module that registers it imported?")


def check_vocab_fits(name: str, model_vocab_size: int) -> None:
  """Raises ValueError when the task's vocabulary has ids the model's embedding cannot hold."""
  task_vocab = seqio.get_mixture_or_task(name).output_features["targets"].vocabulary
  if model_vocab_size < task_vocab.vocab_size:
    raise ValueError(f"VOCAB_SIZE={model_vocab_size} is smaller than the vocabulary of {name!r} "
                     f"({task_vocab.vocab_size} ids); set VOCAB_SIZE >= {task_vocab.vocab_size}")


class DataError(ValueError):
  """The training data cannot be read: no example, or a bad record (the message names the file and line)."""


def data_error_message(error: Exception) -> str:
  """The Python error inside a tf.data failure ('path:12: not valid JSON (...)'), else the first line of it."""
  text = getattr(error, "message", None) or str(error)
  found = re.findall(r"(?:^|\s)((?:[A-Za-z_][\w.]*)?(?:Error|Exception): [^\n]+)", text)
  chosen = found[-1] if found else text.strip().splitlines()[0] if text.strip() else type(error).__name__
  return chosen.split(" [[{{node")[0].strip()


def check_has_data(config: DatasetConfig, shard_index: int = 0, num_shards: int = 1) -> None:
  """Reads one example of every task of MIXTURE_OR_TASK_NAME (this host's shard, unshuffled): a glob that matches
  nothing, an empty file or a bad first record fails here, before anything compiles or is written."""
  name = config.mixture_or_task_name
  for task in seqio.get_subtasks(seqio.get_mixture_or_task(name)):
    where = f"task {task.name!r} (split {config.split!r}, host shard {shard_index} of {num_shards})"
    try:
      ds = task.get_dataset(dict(config.task_feature_lengths), split=config.split, use_cached=config.use_cached,
                            shuffle=False, num_epochs=1, shard_info=seqio.ShardInfo(shard_index, num_shards),
                            try_in_mem_cache=False)
      next(iter(ds.take(1)))
    except StopIteration:
      raise DataError(f"MIXTURE_OR_TASK_NAME={name!r}: {where} has no data (its source yields no example)") from None
    except tf.errors.OpError as e:
      raise DataError(f"MIXTURE_OR_TASK_NAME={name!r}: reading {where} failed: {data_error_message(e)}") from None


def feature_converter(config: DatasetConfig) -> seqio.FeatureConverter:
  """Decoder-only LM converter for a 'targets'-only task; prefix-LM when the task also has 'inputs'."""
  if "inputs" in config.task_feature_lengths:
    return seqio.PrefixLMFeatureConverter(pack=config.pack)
  return seqio.DecoderFeatureConverter(pack=config.pack)


def get_dataset(config: DatasetConfig, shard_index: int = 0, num_shards: int = 1,
                start_batch: int = 0) -> tf.data.Dataset:
  """The infinite, batched per-host tf.data.Dataset, positioned after ``start_batch`` batches."""
  config.validate()
  check_task_exists(config.mixture_or_task_name)
  if config.batch_size % num_shards:
    raise ValueError(f"BATCH_SIZE={config.batch_size} is not divisible by the number of hosts {num_shards}")
  ds = seqio.get_dataset(
      config.mixture_or_task_name,
      task_feature_lengths=dict(config.task_feature_lengths),
      feature_converter=feature_converter(config),
      dataset_split=config.split,
      use_cached=config.use_cached,
      shuffle=config.shuffle,
      num_epochs=None,
      shard_info=seqio.ShardInfo(index=shard_index, num_shards=num_shards),
      seed=config.seed,
      verbose=False,
  )
  options = tf.data.Options()
  options.deterministic = True
  ds = ds.with_options(options)
  ds = ds.batch(config.batch_size // num_shards, drop_remainder=True)
  if start_batch:
    ds = ds.skip(start_batch)
  return ds.prefetch(2)


def batch_iterator(config: DatasetConfig, shard_index: int = 0, num_shards: int = 1,
                   start_batch: int = 0) -> Iterator[Dict[str, np.ndarray]]:
  """Numpy batches ([batch / num_shards, length] int32 per feature) from ``get_dataset``."""
  for batch in get_dataset(config, shard_index, num_shards, start_batch).as_numpy_iterator():
    yield {k: np.asarray(v, np.int32) for k, v in batch.items()}


class TrainBatches:
  """The per-host batch stream of a run: numpy batches, a position that can be saved and restored, and read
  errors turned into DataError (one line naming the bad record) with the tf.data iterator released first."""

  def __init__(self, config: DatasetConfig, shard_index: int = 0, num_shards: int = 1):
    self.config, self.shard_index, self.num_shards = config, shard_index, num_shards
    self._iterator = iter(get_dataset(config, shard_index, num_shards))

  def skip_to(self, start_batch: int) -> None:
    """Repositions by re-reading and dropping the first `start_batch` batches (the fallback; cost grows with it)."""
    self._iterator = iter(get_dataset(self.config, self.shard_index, self.num_shards, start_batch))

  def checkpoint(self) -> tf.train.Checkpoint:
    """The tf.train.Checkpoint of the iterator's position (shuffle and prefetch buffers included)."""
    return tf.train.Checkpoint(iterator=self._iterator)

  def __iter__(self) -> "TrainBatches":
    return self

  def __next__(self) -> Dict[str, np.ndarray]:
    error = None
    try:
      batch = next(self._iterator)
    except StopIteration:
      error = DataError(f"the training data of {self.config.mixture_or_task_name!r} ran out: it yields no batch "
                        f"of {self.config.batch_size // self.num_shards} rows on host shard {self.shard_index}")
    except tf.errors.OpError as e:
      error = DataError(f"reading the training data of {self.config.mixture_or_task_name!r} failed: "
                        f"{data_error_message(e)}")
    if error is not None:
      self.close()  # a failed pipeline must not outlive the run: its threads would keep the process from exiting
      raise error
    return {k: np.asarray(v, np.int32) for k, v in batch.items()}

  def close(self) -> None:
    self._iterator = None
