"""A tiny seqio task over a local text file, for the trainer tests.

Importing this module registers the task when SKIP_T5X_TEST_CORPUS names a text file: subprocess trainings load it
with a gin `import tests.training.tiny_task` line. Tests in this process call ``register(path)``.
"""
from __future__ import annotations

import functools
import os

import seqio
import tensorflow as tf

TINY_TASK = "trainer_test_tiny_lm"
CORPUS_ENV = "SKIP_T5X_TEST_CORPUS"

_WORDS = ("the quick brown fox jumps over lazy dog while seven wizards quietly judge boxing matches "
          "and a router learns which tokens may skip layers to save compute on easy inputs").split()


def write_corpus(path: str, num_lines: int = 400) -> str:
  """Deterministic text: line i is a rotation of a fixed word list, so a tiny model can learn it quickly."""
  with open(path, "w") as f:
    for i in range(num_lines):
      k = (7 * i) % len(_WORDS)
      words = _WORDS[k:] + _WORDS[:k]
      f.write(" ".join(words[: 6 + i % 9]) + ".\n")
  return path


def _to_targets(ds: tf.data.Dataset) -> tf.data.Dataset:
  return ds.map(lambda line: {"targets": line}, num_parallel_calls=tf.data.AUTOTUNE)


def register(corpus_path: str, name: str = TINY_TASK) -> str:
  """Registers (or re-registers) a byte-vocabulary LM task with splits train and validation over the file."""
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
      name,
      source=seqio.TextLineDataSource({"train": corpus_path, "validation": corpus_path}),
      preprocessors=[_to_targets, functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
                     seqio.preprocessors.append_eos],
      output_features={"targets": seqio.Feature(seqio.ByteVocabulary(), add_eos=True)},
      metric_fns=[],
      shuffle_buffer_size=128,
  )
  return name


if os.environ.get(CORPUS_ENV):
  register(os.environ[CORPUS_ENV])
