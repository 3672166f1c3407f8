"""A seqio task over a local text file whose per-host shards are interleaved lines.

With one file and N hosts, seqio shards the examples (host h reads lines h, h + N, ...). Without shuffling or
packing every line is one row, so for the first epoch the N hosts' batch k holds exactly the rows of a single
host's batch k: a multi-process run sees the same global batches (rows permuted) as a one-process run.

Importing this module registers the task when LAUNCH_TEST_CORPUS names a text file (the gin file
tests/launch/tiny_multiprocess.gin imports it in the training processes).
"""
from __future__ import annotations

import os

import seqio
import tensorflow as tf

TASK = "launch_test_lines"
CORPUS_ENV = "LAUNCH_TEST_CORPUS"
_WORDS = "a router learns which tokens may skip a layer and which must pass through every block".split()


def write_corpus(path: str, num_lines: int = 64) -> str:
  """Line i: a rotation of a fixed word list, 5 to 13 words long (distinct lines, deterministic)."""
  with open(path, "w") as f:
    for i in range(num_lines):
      k = (5 * i) % len(_WORDS)
      words = _WORDS[k:] + _WORDS[:k]
      f.write(" ".join(words[: 5 + i % 9]) + f" {i}.\n")
  return path


def register(corpus_path: str) -> str:
  if TASK in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(TASK)
  seqio.TaskRegistry.add(
      TASK,
      source=seqio.TextLineDataSource({"train": corpus_path, "validation": corpus_path}),
      preprocessors=[lambda ds: ds.map(lambda line: {"targets": line}), seqio.preprocessors.tokenize,
                     seqio.preprocessors.append_eos],
      output_features={"targets": seqio.Feature(seqio.ByteVocabulary(), add_eos=True)},
      metric_fns=[],
  )
  return TASK


if os.environ.get(CORPUS_ENV):
  register(os.environ[CORPUS_ENV])
