"""Rank classification: score every candidate continuation, pick the most likely one.

An example with candidates arrives as {'idx', 'candidate_inputs': [n], 'candidate_targets': [n],
'candidate_correct': [n]} (per-candidate prompts allow partial scoring, where the option sits in the prompt and
the shared continuation is scored). `expand_candidates` turns it into n scored examples
{'inputs', 'targets', 'idx', 'candidate', 'is_correct', 'num_candidates'}; after tokenization
`add_target_token_count` records the length used for normalization. The model's score_batch gives each row's
log-likelihood of its targets; the metrics group rows by idx and take the argmax of the (optionally
length-normalized) log-likelihood. An optional 'candidate_credit' [n] (ReCoRD: each entity's F1 against the gold
answers) becomes the row's 'credit', which `record_metrics` averages over the chosen candidates.
"""
from __future__ import annotations

import collections
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

CANDIDATE_FEATURES = ("candidate_inputs", "candidate_targets", "candidate_correct")
CREDIT_FEATURE = "candidate_credit"


def expand_candidates(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """One example per candidate (see module docstring); order: example by example, candidates in order."""
  missing = [k for k in ("idx",) + CANDIDATE_FEATURES if k not in dataset.element_spec]
  if missing:
    raise ValueError(f"expand_candidates needs features {missing}; got {sorted(dataset.element_spec)}")

  with_credit = CREDIT_FEATURE in dataset.element_spec

  def expand(ex):
    n = tf.size(ex["candidate_targets"])
    tf.debugging.assert_equal(tf.size(ex["candidate_inputs"]), n,
                              message="candidate_inputs and candidate_targets differ in length")
    rows = {
        "inputs": ex["candidate_inputs"],
        "targets": ex["candidate_targets"],
        "is_correct": tf.cast(ex["candidate_correct"], tf.bool),
        "candidate": tf.range(n, dtype=tf.int32),
        "idx": tf.fill([n], tf.cast(ex["idx"], tf.int64)),
        "num_candidates": tf.fill([n], tf.cast(n, tf.int32)),
    }
    if with_credit:
      rows["credit"] = tf.cast(ex[CREDIT_FEATURE], tf.float32)
    return tf.data.Dataset.from_tensor_slices(rows)

  return dataset.flat_map(expand)


def add_target_token_count(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Adds 'num_target_tokens' (the length-normalization denominator) after tokenization."""
  return dataset.map(lambda ex: {**ex, "num_target_tokens": tf.size(ex["targets"], out_type=tf.int32)},
                     num_parallel_calls=tf.data.AUTOTUNE)


def postprocess(output: Any, example: Mapping[str, Any] = None, is_target: bool = False) -> Any:
  """Targets become the row's bookkeeping (what the metrics group on); scores pass through unchanged."""
  if not is_target:
    return output
  if example is None:
    raise ValueError("rank classification postprocessing needs the example")
  target = {
      "idx": int(example["idx"]),
      "candidate": int(example["candidate"]),
      "is_correct": bool(example["is_correct"]),
      "num_candidates": int(example["num_candidates"]),
      "num_target_tokens": int(example["num_target_tokens"]),
  }
  if "credit" in example:
    target["credit"] = float(example["credit"])
  return target


def group_predictions(targets: Sequence[Mapping[str, Any]], scores: Sequence[float],
                      length_normalize: bool) -> List[Tuple[int, List[bool]]]:
  """Per example (in idx order): (index of the chosen candidate, correctness of each candidate)."""
  return [(best, [row["is_correct"] for row in rows])
          for best, rows in group_rows(targets, scores, length_normalize)]


def group_rows(targets: Sequence[Mapping[str, Any]], scores: Sequence[float],
               length_normalize: bool) -> List[Tuple[int, List[Mapping[str, Any]]]]:
  """Per example (in idx order): (index of the chosen candidate, the candidates' target rows in order)."""
  if len(targets) != len(scores):
    raise ValueError(f"{len(targets)} candidate rows but {len(scores)} scores")
  rows: Dict[int, List[Tuple[int, float, Mapping[str, Any]]]] = collections.defaultdict(list)
  expected: Dict[int, int] = {}
  for target, score in zip(targets, scores):
    score = float(np.asarray(score).reshape(()))
    if length_normalize:
      score /= max(int(target["num_target_tokens"]), 1)
    rows[target["idx"]].append((target["candidate"], score, target))
    expected[target["idx"]] = target["num_candidates"]
  grouped = []
  for idx in sorted(rows):
    candidates = sorted(rows[idx], key=lambda row: row[0])
    if [c for c, _, _ in candidates] != list(range(expected[idx])):
      raise ValueError(f"example idx={idx}: got candidates {[c for c, _, _ in candidates]}, "
                       f"expected 0..{expected[idx] - 1}")
    best = max(range(len(candidates)), key=lambda i: (candidates[i][1], -i))  # ties: first candidate
    grouped.append((best, [target for _, _, target in candidates]))
  return grouped


def accuracy(targets: Sequence[Mapping[str, Any]], scores: Sequence[float], length_normalize: bool = True) -> dict:
  """{'accuracy', 'chance_accuracy'}: percent of examples whose top candidate is a correct one, and the expected
  percent of a uniformly random pick (mean over examples of correct candidates / candidates)."""
  grouped = group_predictions(targets, scores, length_normalize)
  if not grouped:
    raise ValueError("rank classification accuracy over zero examples")
  return {"accuracy": 100.0 * sum(correct[best] for best, correct in grouped) / len(grouped),
          "chance_accuracy": 100.0 * sum(sum(correct) / len(correct) for _, correct in grouped) / len(grouped)}


def f1a(targets: Sequence[Mapping[str, Any]], scores: Sequence[float], positive_candidate: int = 1,
        length_normalize: bool = False) -> dict:
  """MultiRC: {'f1a', 'accuracy'}. Each example is one answer option with candidates (no, yes); F1a is the
  binary F1 over all answer options of 'predicted yes' against 'yes is correct'."""
  grouped = group_predictions(targets, scores, length_normalize)
  true_pos = false_pos = false_neg = 0
  for best, correct in grouped:
    predicted = best == positive_candidate
    actual = correct[positive_candidate]
    true_pos += predicted and actual
    false_pos += predicted and not actual
    false_neg += actual and not predicted
  denominator = 2 * true_pos + false_pos + false_neg
  return {"f1a": 100.0 * (2 * true_pos / denominator if denominator else 0.0),
          "accuracy": 100.0 * sum(correct[best] for best, correct in grouped) / max(len(grouped), 1)}


def record_metrics(targets: Sequence[Mapping[str, Any]], scores: Sequence[float],
                   length_normalize: bool = False) -> dict:
  """ReCoRD, as the official scorer: {'accuracy' (= exact match: the chosen entity matches a gold answer after
  normalization), 'f1' (the chosen entity's best token F1 over the gold answers), 'chance_accuracy'}."""
  grouped = group_rows(targets, scores, length_normalize)
  if not grouped:
    raise ValueError("ReCoRD metrics over zero examples")
  if any("credit" not in row for _, rows in grouped for row in rows):
    raise ValueError("ReCoRD metrics need each candidate's 'credit' (candidate_credit)")
  n = len(grouped)
  return {"accuracy": 100.0 * sum(rows[best]["is_correct"] for best, rows in grouped) / n,
          "f1": 100.0 * sum(rows[best]["credit"] for best, rows in grouped) / n,
          "chance_accuracy": 100.0 * sum(sum(r["is_correct"] for r in rows) / len(rows) for _, rows in grouped) / n}
