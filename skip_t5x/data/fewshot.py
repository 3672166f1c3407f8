"""1-shot example construction: exemplar choice and the seqio preprocessors shared by every 1-shot task.

Each evaluated item gets one exemplar from a pool (the first `pool_size` items of the task's shot split, in the
split's stored order). The exemplar is chosen by a stable hash of (seed, task, item key), so the choice does not
depend on the item's position, the host, or the process; if it lands on an item with the evaluated item's key
(Winograd draws exemplars from its own test split) the next pool item is taken. The model sees
    exemplar prompt + exemplar answer + SEPARATOR + item prompt
and scores (or generates) the item's continuation.
"""
from __future__ import annotations

import json
import logging
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import gin
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from skip_t5x.data.embedded_corpus import stable_hash
from skip_t5x.data.prompt_items import Formatter, PromptItem, text

SEPARATOR = "\n\n"


@gin.configurable
def fewshot_options(seed: int = 0, pool_size: int = 256) -> dict:
  """Gin knobs of exemplar selection: the seed of the choice and how many shot-split items form the pool."""
  if pool_size < 2:
    raise ValueError(f"fewshot_options.pool_size must be >= 2, got {pool_size}")
  return {"seed": int(seed), "pool_size": int(pool_size)}


def choose_exemplar(item: PromptItem, pool: Sequence[PromptItem], seed: int, task_name: str) -> PromptItem:
  """The exemplar of `item`: stable for (seed, task, item.key), never an item with the same key."""
  if not pool:
    raise ValueError(f"{task_name}: the exemplar pool is empty")
  start = stable_hash(f"{seed}\x1f{task_name}\x1f{item.key}") % len(pool)
  for offset in range(len(pool)):
    candidate = pool[(start + offset) % len(pool)]
    if candidate.key != item.key:
      return candidate
  raise ValueError(f"{task_name}: every exemplar in the pool is the evaluated item itself")


def one_shot_records(items: Sequence[PromptItem], pool: Sequence[PromptItem], seed: int,
                     task_name: str) -> List[dict]:
  """Model-ready records: rank items give candidate lists, generation items a single prompt and gold answers."""
  records = []
  for idx, item in enumerate(items):
    exemplar = choose_exemplar(item, pool, seed, task_name).demonstration() + SEPARATOR
    if item.is_generation:
      records.append({"idx": idx, "inputs": exemplar + item.prompts[0], "targets": item.continuations[0],
                      "answers_json": json.dumps(list(item.answers))})
    else:
      correct = set(item.correct)
      records.append({"idx": idx,
                      "candidate_inputs": [exemplar + p for p in item.prompts],
                      "candidate_targets": list(item.continuations),
                      "candidate_correct": [int(c in correct) for c in range(len(item.prompts))]})
  return records


def records_to_dataset(records: Sequence[Mapping], task_name: str) -> tf.data.Dataset:
  if not records:
    raise ValueError(f"{task_name}: no usable examples (all were empty or malformed)")
  columns: Dict[str, list] = {k: [r[k] for r in records] for k in records[0]}
  tensors = {}
  for key, values in columns.items():
    if isinstance(values[0], list):
      dtype = tf.string if isinstance(values[0][0], str) else tf.int32
      tensors[key] = tf.ragged.constant(values, dtype=dtype)
    elif isinstance(values[0], str):
      tensors[key] = tf.constant(values, dtype=tf.string)
    else:
      tensors[key] = tf.constant(values, dtype=tf.int64)
  dataset = tf.data.Dataset.from_tensor_slices(tensors)
  return dataset.map(lambda ex: {k: (v.to_tensor() if isinstance(v, tf.RaggedTensor) else v)
                                 for k, v in ex.items()})


def format_items(dataset: tf.data.Dataset, formatter: Formatter, task_name: str, what: str,
                 limit: Optional[int] = None) -> List[PromptItem]:
  """Runs `formatter` over a raw dataset (as numpy), keeping at most `limit` items; logs dropped examples."""
  raw_count = [0]

  def counted():
    for example in tfds.as_numpy(dataset):
      raw_count[0] += 1
      yield example

  items = []
  for item in formatter(counted()):
    items.append(item)
    if limit is not None and len(items) >= limit:
      break
  logging.info("%s: %d %s items from %d raw examples", task_name, len(items), what, raw_count[0])
  return items


def make_one_shot_preprocessor(task_name: str, formatter: Formatter,
                               shot_dataset_fn: Callable[[], tf.data.Dataset],
                               max_items: Optional[Callable[[], Optional[int]]] = None):
  """A seqio preprocessor: raw evaluated split -> 1-shot records (see `one_shot_records`).

  `shot_dataset_fn` returns the raw shot split; it is read when the task's dataset is built, after gin parsing.
  """

  def one_shot(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = fewshot_options()
    pool = format_items(shot_dataset_fn(), formatter, task_name, "exemplar", limit=options["pool_size"])
    items = format_items(dataset, formatter, task_name, "evaluated",
                         limit=max_items() if max_items else None)
    return records_to_dataset(one_shot_records(items, pool, options["seed"], task_name), task_name)

  one_shot.__name__ = "one_shot"
  return one_shot


def truncate_inputs_left(dataset: tf.data.Dataset,
                         sequence_length: Optional[Mapping[str, int]] = None) -> tf.data.Dataset:
  """Keeps the last sequence_length['inputs'] prompt tokens: a long passage loses its start, never the question
  that ends the prompt (seqio's own trimming would cut the end)."""
  if not sequence_length or not sequence_length.get("inputs"):
    return dataset
  keep = int(sequence_length["inputs"])
  return dataset.map(lambda ex: {**ex, "inputs": ex["inputs"][-keep:]}, num_parallel_calls=tf.data.AUTOTUNE)


def tokenize_with_pretokenized(dataset: tf.data.Dataset,
                               output_features: Mapping[str, seqio.Feature]) -> tf.data.Dataset:
  """seqio tokenization that keeps 'inputs_pretokenized'/'targets_pretokenized' for logging and metrics."""
  return seqio.preprocessors.tokenize(dataset, output_features, copy_pretokenized=True)


def generation_postprocessor(answer_fn: Callable[[str], str], with_context: bool = False):
  """Targets -> the gold answers (from 'answers_json'), or with `with_context` {'answers', 'context': the evaluated
  prompt after the exemplar}; predictions -> answer_fn(decoded text)."""

  def postprocess(output, example=None, is_target: bool = False):
    if is_target:
      if example is None or "answers_json" not in example:
        raise ValueError("generation targets need the example's 'answers_json'")
      answers = json.loads(text(example["answers_json"]))
      if not with_context:
        return answers
      return {"answers": answers, "context": text(example["inputs_pretokenized"]).rsplit(SEPARATOR, 1)[-1]}
    return answer_fn(output)

  postprocess.__name__ = f"generation_postprocessor_{answer_fn.__name__}"
  return postprocess
