"""1-shot example construction: exemplar choice and the seqio preprocessors shared by every 1-shot task.

Each evaluated item gets one exemplar from a pool (the first `pool_size` items of the task's shot split, in the
split's stored order). The exemplar is chosen by a stable hash of (seed, task, item key), so the choice does not
depend on the item's position, the host, or the process; if it lands on an item with the evaluated item's key
(Winograd draws exemplars from its own test split) the next pool item is taken. The model sees
    exemplar prompt + exemplar answer + SEPARATOR + item prompt
and scores (or generates) the item's continuation. A dialogue prompt (QuAC, CoQA) longer than the input budget
drops history turns, oldest first: the exemplar's, then the item's own; the current question always stays.
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


def _most_turns(fits: Callable[[int], bool], turns: int) -> int:
  """The largest k in [0, turns] with fits(k) (fits is monotone in k), or -1 when not even fits(0)."""
  if not fits(0):
    return -1
  low, high = 0, turns  # fits(low) holds
  while low < high:
    mid = (low + high + 1) // 2
    if fits(mid):
      low = mid
    else:
      high = mid - 1
  return low


def fit_dialogue_history(exemplar: PromptItem, item: PromptItem, budget: Optional[int],
                         count_tokens: Optional[Callable[[str], int]]) -> str:
  """exemplar + SEPARATOR + item prompt within `budget` tokens, dropping history turns oldest first: the
  exemplar's, then the item's. Never the current question: what is still too long is cut from the start by
  truncate_inputs_left."""

  def joined(exemplar_turns: int, item_turns: int) -> str:
    return exemplar.demonstration(exemplar_turns) + SEPARATOR + item.prompt_keeping(item_turns)

  full = joined(len(exemplar.history), len(item.history))
  if not budget or count_tokens is None or not (exemplar.history or item.history) or count_tokens(full) <= budget:
    return full
  item_turns = len(item.history)
  exemplar_turns = _most_turns(lambda k: count_tokens(joined(k, item_turns)) <= budget, len(exemplar.history))
  if exemplar_turns >= 0:
    return joined(exemplar_turns, item_turns)
  item_turns = _most_turns(lambda k: count_tokens(joined(0, k)) <= budget, item_turns)
  return joined(0, max(item_turns, 0))


def one_shot_records(items: Sequence[PromptItem], pool: Sequence[PromptItem], seed: int, task_name: str,
                     max_input_tokens: Optional[int] = None,
                     count_tokens: Optional[Callable[[str], int]] = None) -> List[dict]:
  """Model-ready records: rank items give candidate lists, generation items a single prompt and gold answers.
  With `max_input_tokens` and `count_tokens`, dialogue prompts are fitted (fit_dialogue_history)."""
  records = []
  for idx, item in enumerate(items):
    exemplar_item = choose_exemplar(item, pool, seed, task_name)
    if item.is_generation:
      inputs = fit_dialogue_history(exemplar_item, item, max_input_tokens, count_tokens)
      records.append({"idx": idx, "inputs": inputs, "targets": item.continuations[0],
                      "answers_json": json.dumps(list(item.answers))})
      continue
    exemplar = exemplar_item.demonstration() + SEPARATOR
    correct = set(item.correct)
    record = {"idx": idx,
              "candidate_inputs": [exemplar + p for p in item.prompts],
              "candidate_targets": list(item.continuations),
              "candidate_correct": [int(c in correct) for c in range(len(item.prompts))]}
    if item.credit:
      record["candidate_credit"] = [float(c) for c in item.credit]
    records.append(record)
  return records


def records_to_dataset(records: Sequence[Mapping], task_name: str) -> tf.data.Dataset:
  if not records:
    raise ValueError(f"{task_name}: no usable examples (all were empty or malformed)")
  columns: Dict[str, list] = {k: [r[k] for r in records] for k in records[0]}
  tensors = {}
  for key, values in columns.items():
    if isinstance(values[0], list):
      first = values[0][0]
      dtype = tf.string if isinstance(first, str) else tf.float32 if isinstance(first, float) else tf.int32
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
  seqio passes the sequence lengths and features: dialogue prompts are fitted to sequence_length['inputs'].
  """

  def one_shot(dataset: tf.data.Dataset, sequence_length: Optional[Mapping[str, int]] = None,
               output_features: Optional[Mapping[str, seqio.Feature]] = None) -> tf.data.Dataset:
    options = fewshot_options()
    pool = format_items(shot_dataset_fn(), formatter, task_name, "exemplar", limit=options["pool_size"])
    items = format_items(dataset, formatter, task_name, "evaluated",
                         limit=max_items() if max_items else None)
    budget = (sequence_length or {}).get("inputs")
    count_tokens = None
    if budget and output_features and "inputs" in output_features:
      vocabulary = output_features["inputs"].vocabulary
      count_tokens = lambda s: len(vocabulary.encode(s))  # noqa: E731
    records = one_shot_records(items, pool, options["seed"], task_name, budget, count_tokens)
    return records_to_dataset(records, task_name)

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
