"""Answer normalization and generation metrics (seqio metric functions: (targets, predictions) -> dict).

- SQuAD-style normalization: lower case, punctuation and the articles a/an/the removed, whitespace collapsed.
  Exact match and token F1 take the best score over the gold answers of each example. An empty gold answer (an
  unanswerable SQuAD v2 question) is matched only by an empty prediction, as in the official v2 scorer.
- TriviaQA: the official normalization, where punctuation becomes a space ("Guns-N-Roses" == "guns n roses") and
  underscores are spaces; exact match against any alias.
- DROP: the official evaluation's number-aware variant: tokens are split on spaces and hyphens, numbers are
  canonicalized ("2.0" == "2", "1,000" == "1000"), F1 is over the SETS of tokens, it is 0 when the gold answer has
  numbers and the prediction none of them, and each example's F1 is rounded to 2 decimals.
Scores are percentages (0..100), as in the papers.
"""
from __future__ import annotations

import collections
import re
import string
from typing import Iterable, List, Mapping, Optional, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)
_TRIVIA_QA_PUNCTUATION = frozenset(string.punctuation + "\u2018\u2019\u00b4`")


def normalize_answer(text: str) -> str:
  """SQuAD normalization: lower, drop punctuation, drop articles, collapse whitespace."""
  text = text.lower()
  text = "".join(ch for ch in text if ch not in _PUNCTUATION)
  text = _ARTICLES.sub(" ", text)
  return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
  return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
  """SQuAD token F1 of normalized answers (two empty answers match)."""
  pred_tokens = normalize_answer(prediction).split()
  gold_tokens = normalize_answer(gold).split()
  if not pred_tokens or not gold_tokens:
    return float(pred_tokens == gold_tokens)
  common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
  overlap = sum(common.values())
  if overlap == 0:
    return 0.0
  precision = overlap / len(pred_tokens)
  recall = overlap / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


def _best(metric, prediction: str, golds: Sequence[str]) -> float:
  if not golds:
    raise ValueError(f"an example has no gold answer (prediction {prediction!r})")
  return max(metric(prediction, g) for g in golds)


def _as_gold_lists(targets: Iterable) -> List[List[str]]:
  return [[t] if isinstance(t, str) else list(t) for t in targets]


def squad_metrics(targets: Sequence, predictions: Sequence[str]) -> dict:
  """{'exact_match', 'f1'}: best over each example's gold answers, averaged, in percent. With unanswerable
  examples (gold answers [""]) also the official v2 breakdown: 'has_answer_f1', 'no_answer_f1' (and _exact_match)."""
  golds = _as_gold_lists(targets)
  _check_lengths(golds, predictions)
  em = [_best(exact_match, p, g) for p, g in zip(predictions, golds)]
  f1 = [_best(token_f1, p, g) for p, g in zip(predictions, golds)]
  result = {"exact_match": 100.0 * _mean(em), "f1": 100.0 * _mean(f1)}
  no_answer = [all(not normalize_answer(a) for a in g) for g in golds]
  if any(no_answer):
    for name, flag in (("has_answer", False), ("no_answer", True)):
      chosen = [i for i, n in enumerate(no_answer) if n == flag]
      if chosen:
        result[f"{name}_exact_match"] = 100.0 * _mean([em[i] for i in chosen])
        result[f"{name}_f1"] = 100.0 * _mean([f1[i] for i in chosen])
  return result


def exact_match_metric(targets: Sequence, predictions: Sequence[str]) -> dict:
  """{'exact_match'} only (TriviaQA, NaturalQuestions, WebQuestions, LAMBADA)."""
  golds = _as_gold_lists(targets)
  _check_lengths(golds, predictions)
  return {"exact_match": 100.0 * _mean([_best(exact_match, p, g) for p, g in zip(predictions, golds)])}


def normalize_trivia_qa(text: str) -> str:
  """TriviaQA's official normalization: underscores and punctuation (with curly quotes) become spaces, lower
  case, articles dropped, whitespace collapsed."""
  text = text.replace("_", " ").lower()
  text = "".join(" " if ch in _TRIVIA_QA_PUNCTUATION else ch for ch in text)
  text = _ARTICLES.sub(" ", text)
  return " ".join(text.split())


def trivia_qa_metric(targets: Sequence, predictions: Sequence[str]) -> dict:
  """{'exact_match'}: the prediction equals any alias under TriviaQA's normalization."""
  golds = _as_gold_lists(targets)
  _check_lengths(golds, predictions)

  def match(prediction: str, gold: str) -> float:
    return float(normalize_trivia_qa(prediction) == normalize_trivia_qa(gold))

  return {"exact_match": 100.0 * _mean([_best(match, p, g) for p, g in zip(predictions, golds)])}


def lambada_metric(targets: Sequence[Mapping], predictions: Sequence[str]) -> dict:
  """{'exact_match', 'chance_exact_match'} for last-word prediction. Targets are {'answers': [...], 'context':
  the passage without its last word}. Chance is LAMBADA's random-context-word baseline (Paperno et al. 2016): the
  expected exact match of answering with a uniformly random word of the context."""
  golds = [list(t["answers"]) for t in targets]
  _check_lengths(golds, predictions)
  em = [_best(exact_match, p, g) for p, g in zip(predictions, golds)]
  chance = []
  for target, gold in zip(targets, golds):
    words = target["context"].split()
    chance.append(_mean([_best(exact_match, w, gold) for w in words]) if words else 0.0)
  return {"exact_match": 100.0 * _mean(em), "chance_exact_match": 100.0 * _mean(chance)}


def f1_metric(targets: Sequence, predictions: Sequence[str]) -> dict:
  """{'f1', 'exact_match'} (QuAC, CoQA)."""
  return squad_metrics(targets, predictions)


# ------------------------------------------------------------------------------------------------------ DROP
def _canonical_number(token: str) -> Optional[str]:
  """'2.0' -> '2', '1,000' -> '1000', 'five' stays a word (None)."""
  candidate = token.replace(",", "")
  try:
    value = float(candidate)
  except ValueError:
    return None
  if value != value or value in (float("inf"), float("-inf")):
    return None
  return str(int(value)) if value == int(value) else str(value)


def drop_tokens(text: str) -> List[str]:
  """DROP tokenization and normalization: split on whitespace and hyphens, numbers canonicalized."""
  tokens = []
  for raw in re.split(r"[\s\-]+", text.lower()):
    number = _canonical_number(raw.strip(string.punctuation))
    if number is not None:
      tokens.append(number)
      continue
    word = "".join(ch for ch in raw if ch not in _PUNCTUATION)
    if word and not _ARTICLES.fullmatch(word):
      tokens.append(word)
  return tokens


def drop_f1(prediction: str, gold: str) -> float:
  """The official DROP F1 of one answer: F1 of the token SETS of the normalized answers, 0 when the gold has
  numbers and the prediction none of them, rounded to 2 decimals."""
  pred, ref = set(drop_tokens(prediction)), set(drop_tokens(gold))
  if not pred or not ref:
    return float(pred == ref)
  gold_numbers = {t for t in ref if _canonical_number(t) is not None}
  pred_numbers = {t for t in pred if _canonical_number(t) is not None}
  if gold_numbers and not gold_numbers & pred_numbers:
    return 0.0
  overlap = len(pred & ref)
  if overlap == 0:
    return 0.0
  precision, recall = overlap / len(pred), overlap / len(ref)
  return round(2 * precision * recall / (precision + recall), 2)


def drop_exact_match(prediction: str, gold: str) -> float:
  return float(drop_tokens(prediction) == drop_tokens(gold))


def drop_metrics(targets: Sequence, predictions: Sequence[str]) -> dict:
  """{'f1', 'exact_match'} with DROP's number-aware normalization, best over gold answers, in percent."""
  golds = _as_gold_lists(targets)
  _check_lengths(golds, predictions)
  return {"f1": 100.0 * _mean([_best(drop_f1, p, g) for p, g in zip(predictions, golds)]),
          "exact_match": 100.0 * _mean([_best(drop_exact_match, p, g) for p, g in zip(predictions, golds)])}


def _mean(values: Sequence[float]) -> float:
  if not values:
    raise ValueError("metric over zero examples")
  return sum(values) / len(values)


def _check_lengths(golds: Sequence, predictions: Sequence) -> None:
  if len(golds) != len(predictions):
    raise ValueError(f"{len(golds)} targets but {len(predictions)} predictions")
