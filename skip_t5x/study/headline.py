"""The three sentences at the top of the report, written from the numbers.

1. Held-out loss: does the method beat the matched dense arm and each baseline, by how much, against the seed
   spread. 2. The same for the 1-shot average. 3. The tally of those comparisons, and what the method costs
   relative to the matched dense arm (inference FLOPs per token, train-step time).
"""
from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

from skip_t5x.study.stats import Comparison, Stat, compare, describe, format_stat, join_clauses

HEADLINE_METRICS = (("heldout_loss", "held-out loss", 3), ("oneshot_overall", "the 1-shot average", 1))


def metric_sentence(metric: str, title: str, digits: int, method: str, stats: Mapping[str, Mapping[str, Stat]],
                    others: Sequence[str]) -> tuple:
  """(sentence, comparisons) for one metric."""
  own = stats.get(method, {}).get(metric)
  if own is None or own.mean is None:
    return f"On {title}, there is no result for {method}.", []
  comparisons = [c for c in (compare(own, stats[o][metric], o, metric) for o in others
                             if metric in stats.get(o, {})) if c is not None]
  if not comparisons:
    return f"On {title}, {method} scores {format_stat(own, digits)}, with no other arm to compare it with.", []
  clauses = join_clauses([describe(c, digits) for c in comparisons])
  return f"On {title}, {method} ({format_stat(own, digits)}) {clauses}.", comparisons


def _ratio(stats: Mapping[str, Mapping[str, Stat]], arm: str, reference: str, metric: str) -> Optional[float]:
  own, ref = stats.get(arm, {}).get(metric), stats.get(reference, {}).get(metric)
  if own is None or ref is None or own.mean is None or not ref.mean:
    return None
  return own.mean / ref.mean


def verdict_sentence(method: str, reference: str, comparisons: Sequence[Comparison],
                     stats: Mapping[str, Mapping[str, Stat]]) -> str:
  """The tally of the comparisons and the method's cost against the matched dense arm."""
  counts = {v: sum(c.verdict == v for c in comparisons) for v in ("win", "loss", "within", "unresolved")}
  total = len(comparisons)
  if total == 0:
    tally = f"There is nothing to compare {method} with"
  elif counts["unresolved"] == total:
    ahead, behind = sum(c.advantage > 0 for c in comparisons), sum(c.advantage < 0 for c in comparisons)
    tied = total - ahead - behind
    tally = (f"With one seed per arm none of the {total} differences can be judged against seed noise; "
             f"{method} is ahead in {ahead} and behind in {behind}" + (f" (tied in {tied})" if tied else ""))
  else:
    tally = (f"Of {total} comparisons, {counts['win']} are wins and {counts['loss']} losses by more than twice the "
             f"seed spread, and {counts['within']} are within it")
    if counts["unresolved"]:
      tally += f" ({counts['unresolved']} cannot be judged: one seed)"
  costs = []
  flops = _ratio(stats, method, reference, "infer_flops")
  if flops is not None:
    costs.append(f"{flops:.2f}x the inference FLOPs per token of {reference}")
  masked, gather = (_ratio(stats, method, reference, m) for m in ("time_masked", "time_gather"))
  if masked is not None:
    time_text = f"{masked:.2f}x its train-step time with masked dispatch"
    costs.append(time_text + (f" ({gather:.2f}x with gather)" if gather is not None else ""))
  cost = f", at {join_clauses(costs)}" if costs else ""
  return f"{tally}{cost}."


def headline(stats: Mapping[str, Mapping[str, Stat]], method: str, reference: str,
             baselines: Sequence[str]) -> List[str]:
  """Three sentences: the method against `reference` and each of `baselines` (arms absent from stats are left out)."""
  others = [a for a in [reference, *baselines] if a != method and a in stats]
  sentences, comparisons = [], []
  for metric, title, digits in HEADLINE_METRICS:
    sentence, found = metric_sentence(metric, title, digits, method, stats, others)
    sentences.append(sentence)
    comparisons += found
  sentences.append(verdict_sentence(method, reference, comparisons, stats))
  return sentences

