"""The input position saved beside a checkpoint: restoring it continues exactly where the run was (the same
batches as an uninterrupted stream and as re-reading), reads nothing consumed, and falls back when it cannot."""
from __future__ import annotations

import json
import os

import gin
import numpy as np
import seqio
import tensorflow as tf

from skip_t5x.training import data_state, input_pipeline
from tests.training import helpers


def _config(task=helpers.TINY_TASK, **kwargs):
  return input_pipeline.DatasetConfig(task, {"targets": 32}, batch_size=8, **kwargs)


def _take(batches, n):
  return [next(batches)["decoder_target_tokens"] for _ in range(n)]


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def test_a_restored_position_continues_like_the_uninterrupted_stream(tiny_corpus, tmp_path):
  config = _config()
  running = input_pipeline.TrainBatches(config)
  _take(running, 5)
  states = data_state.DataStates(str(tmp_path), 0, 1)
  assert states.save(5, running, data_position=5)
  expected = _take(running, 3)  # what the uninterrupted run reads next
  with open(tmp_path / "5.data" / "process_0-of-1.json") as f:
    assert json.load(f)["data_position"] == 5
  said = []
  resumed = input_pipeline.TrainBatches(config)
  states.resume(5, resumed, 5, say=said.append)
  assert said == []  # restored, not re-read
  _assert_same(_take(resumed, 3), expected)
  skipped = input_pipeline.TrainBatches(config)
  skipped.skip_to(5)  # the fallback: re-read and drop 5 batches
  _assert_same(_take(skipped, 3), expected)


def test_a_position_that_does_not_fit_falls_back_to_re_reading(tiny_corpus, tmp_path):
  config = _config()
  running = input_pipeline.TrainBatches(config)
  _take(running, 4)
  data_state.DataStates(str(tmp_path), 0, 1).save(4, running, data_position=4)
  expected = _take(running, 2)
  for states, position, reason in [
      (data_state.DataStates(str(tmp_path), 0, 2), 4, "no saved input position for process_0-of-2 at step 4"),
      (data_state.DataStates(str(tmp_path), 0, 1), 3, "the saved input position at step 4 is for another "
                                                      "data_position")]:
    said = []
    resumed = input_pipeline.TrainBatches(config)
    states.resume(4, resumed, position, say=said.append)
    assert said == [f"Input pipeline: {reason}; re-reading the {position} consumed batches instead"]
    if position == 4:
      _assert_same(_take(resumed, 2), expected)


def test_text_files_are_checkpointable(tmp_path):
  """text_files_lm reads lines with tf.data and parses them statelessly: its position can be saved."""
  import skip_t5x.data.tasks  # noqa: F401  (registers text_files_lm)

  corpus = tmp_path / "docs.jsonl"
  corpus.write_text("".join(json.dumps({"text": f"document {i} says hello"}) + "\n" for i in range(300)))
  gin.parse_config(f"skip_t5x.data.sources.text_file_patterns.train = '{corpus}'")
  config = _config("text_files_lm", shuffle=False)
  running = input_pipeline.TrainBatches(config)
  _take(running, 3)
  states = data_state.DataStates(str(tmp_path / "ckpt"), 0, 1)
  assert states.save(3, running, 3)
  expected = _take(running, 2)
  resumed = input_pipeline.TrainBatches(config)
  assert states.restore(3, resumed, 3) is None
  _assert_same(_take(resumed, 2), expected)


def test_a_python_generator_pipeline_is_not_saved_and_old_positions_are_pruned(tmp_path, capsys):
  name = "data_state_test_generator_lm"
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)

  def dataset_fn(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    return tf.data.Dataset.from_generator(lambda: ({"targets": [3, 4, 5, i % 7 + 6]} for i in range(10**6)),
                                          output_signature={"targets": tf.TensorSpec([None], tf.int32)})

  seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(dataset_fn, splits=["train"]), preprocessors=[],
                         output_features={"targets": seqio.Feature(seqio.ByteVocabulary(), add_eos=False)},
                         metric_fns=[])
  try:
    batches = input_pipeline.TrainBatches(_config(name, shuffle=False))
    next(batches)
    states = data_state.DataStates(str(tmp_path), 0, 1)
    assert not states.save(1, batches, 1) and not states.save(2, batches, 2)
    assert capsys.readouterr().out.count("the input pipeline cannot be checkpointed") == 1
  finally:
    seqio.TaskRegistry.remove(name)
  for step in (2, 4, 6):
    os.makedirs(tmp_path / f"{step}.data")
  states.prune([4, 6])
  assert sorted(os.listdir(tmp_path)) == ["4.data", "6.data"]  # 1.data (the failed save's folder) and 2.data go
