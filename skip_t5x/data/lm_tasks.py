"""Pretraining language-modeling tasks: features {'targets'} for seqio.LMFeatureConverter.

Registered tasks (splits 'train' and 'validation'):
- `embedded_lm`: the embedded corpus (no download; see embedded_corpus.py).
- `text_files_lm`: text or JSONL files from the gin knob `skip_t5x.data.sources.text_file_patterns`.
- `c4_en_lm`: TFDS `c4/en` (prepare it first; the TFDS data_dir is a gin knob).

Pipeline: clean the text (undecodable bytes replaced, whitespace stripped, empty documents dropped, documents
longer than `MAX_DOCUMENT_CHARS` cut into consecutive pieces) -> tokenize -> EOS after each document ->
concatenate the token stream and split it into rows of exactly TASK_FEATURE_LENGTHS['targets'] tokens (the last
row of a shard may be shorter; the feature converter pads it). Order is deterministic for a seed; per-host
sharding is seqio's ShardInfo.
"""
from __future__ import annotations

from typing import Mapping

import seqio
import tensorflow as tf

from skip_t5x.data import sources
from skip_t5x.data import vocab as vocab_lib

MAX_DOCUMENT_CHARS = 100_000
LM_TASKS = ("embedded_lm", "text_files_lm", "c4_en_lm")


def clean_text(dataset: tf.data.Dataset, max_document_chars: int = MAX_DOCUMENT_CHARS) -> tf.data.Dataset:
  """{'text'} -> {'targets': cleaned text}: bytes made valid UTF-8, stripped, empty dropped, long ones split."""

  def fix(ex):
    text = tf.strings.unicode_transcode(ex["text"], "UTF-8", "UTF-8", errors="replace",
                                        replacement_char=0xFFFD)
    return {"targets": tf.strings.strip(text)}

  def split_long(ex):
    text = ex["targets"]
    num_chars = tf.strings.length(text, unit="UTF8_CHAR")
    starts = tf.range(0, num_chars, max_document_chars)
    pieces = tf.strings.substr(tf.fill(tf.shape(starts), text), starts,
                               tf.fill(tf.shape(starts), max_document_chars), unit="UTF8_CHAR")
    return tf.data.Dataset.from_tensor_slices({"targets": pieces})

  if "text" not in dataset.element_spec:
    raise ValueError(f"LM source must yield a 'text' feature, got features {sorted(dataset.element_spec)}")
  dataset = dataset.map(fix, num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.filter(lambda ex: tf.strings.length(ex["targets"]) > 0)
  return dataset.flat_map(split_long)


def append_eos_to_targets(dataset: tf.data.Dataset, output_features: Mapping[str, seqio.Feature]):
  """Appends EOS to every tokenized document, so documents stay separated after concatenation."""
  eos_id = output_features["targets"].vocabulary.eos_id

  def append(ex):
    return {"targets": tf.concat([ex["targets"], tf.constant([eos_id], tf.int32)], axis=0)}

  return dataset.map(append, num_parallel_calls=tf.data.AUTOTUNE)


def concatenate_and_split(dataset: tf.data.Dataset, sequence_length: Mapping[str, int]) -> tf.data.Dataset:
  """Concatenates all 'targets' token sequences and cuts the stream into rows of sequence_length['targets']."""
  if sequence_length is None or not sequence_length.get("targets"):
    raise ValueError(f"LM tasks need sequence_length {{'targets': T}}, got {sequence_length!r}")
  length = int(sequence_length["targets"])
  if length < 2:
    raise ValueError(f"sequence_length['targets'] must be >= 2, got {length}")
  tokens = dataset.map(lambda ex: ex["targets"]).unbatch()  # one token per element, in order
  return tokens.batch(length, drop_remainder=False).map(lambda row: {"targets": row})


def tokenize_targets(dataset: tf.data.Dataset, output_features: Mapping[str, seqio.Feature]) -> tf.data.Dataset:
  return seqio.preprocessors.tokenize(dataset, output_features, copy_pretokenized=False)


def register_lm_task(name: str, source: seqio.DataSource) -> seqio.Task:
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  return seqio.TaskRegistry.add(
      name,
      source=source,
      preprocessors=[clean_text, tokenize_targets, append_eos_to_targets, seqio.CacheDatasetPlaceholder(),
                     concatenate_and_split],
      output_features=vocab_lib.output_features(with_inputs=False),
      metric_fns=[],
      shuffle_buffer_size=10_000,
  )


def register_all() -> None:
  register_lm_task("embedded_lm", sources.embedded_source())
  register_lm_task("text_files_lm", sources.TextFilesSource())
  register_lm_task("c4_en_lm", sources.PreparedTfdsSource(
      "c4/en:3.1.0", splits={"train": "train", "validation": "validation"}))
register_all()
