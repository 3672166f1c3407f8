"""The report's numbers: per-run values, their mean and spread over seeds per arm, and comparisons of the method
with the other arms. Pure Python on plain data (no jax, no files), so the arithmetic is tested on hand-made inputs.

The spread of an arm is the sample standard deviation over its seeds (None with one seed). A difference between
two arms is judged against the spread of that difference, sqrt(s_a^2 + s_b^2): it is *resolved* when larger than
CLEAR times it, and *within the seed spread* otherwise.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

CLEAR = 2.0
LOWER_IS_BETTER = frozenset({"heldout_loss", "heldout_ppl", "final_train_loss"})


@dataclasses.dataclass(frozen=True)
class Stat:
  """Mean and spread (sample std) over the seeds that have the value."""

  mean: Optional[float]
  spread: Optional[float]
  n: int


def mean_spread(values: Iterable[Optional[float]]) -> Stat:
  kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
  if not kept:
    return Stat(None, None, 0)
  return Stat(statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else None, len(kept))


def mean_train_density(records: Sequence[Mapping[str, Any]]) -> Optional[float]:
  """The mean of 'router/density' over the logged training steps (None for a model without routers)."""
  values = [r["router/density"] for r in records if isinstance(r.get("router/density"), (int, float))]
  return statistics.fmean(values) if values else None


@dataclasses.dataclass
class ArmResult:
  """One arm of the report: its identity, its runs (runs.RunData, one per seed) and {metric: Stat} over them."""

  name: str
  group: str
  family: str
  label: str
  runs: List[Any]
  stats: Dict[str, Stat]

  @property
  def seeds(self) -> List[Optional[int]]:
    return [run.seed for run in self.runs]


def _get(data: Optional[Mapping[str, Any]], *path: str) -> Optional[Any]:
  for key in path:
    if not isinstance(data, Mapping) or data.get(key) is None:
      return None
    data = data[key]
  return data


def run_values(run) -> Dict[str, Optional[float]]:
  """The report's numbers for one run (a runs.RunData); missing ones are None."""
  analysis, summary = run.analysis, run.summary
  density = mean_train_density(run.train)
  heldout_density = _get(analysis, "heldout", "density")
  values = {
      "params": _get(analysis, "num_params"), "layers": _get(analysis, "num_layers"),
      "train_flops": _get(analysis, "flops", "train_realized"),
      "infer_flops": _get(analysis, "flops", "infer_realized"),
      "train_skip": None if density is None else 1.0 - density,
      "eval_skip": _get(summary, "realized_skip_ratio"),
      "heldout_skip": None if heldout_density is None else 1.0 - heldout_density,
      "final_train_loss": run.train[-1].get("loss") if run.train else None,
      "heldout_loss": _get(analysis, "heldout", "cross_entropy"),
      "heldout_ppl": _get(analysis, "heldout", "perplexity"),
      "time_masked": _get(run.timing, "seconds_per_step", "masked"),
      "time_gather": _get(run.timing, "seconds_per_step", "gather"),
  }
  for name, summary_of in sorted(run.evals.items()):
    prefix = "oneshot" if name == "eval" else f"oneshot[{name[len('eval_'):]}]"
    for kind in ("NLU", "NLG", "overall"):
      values[f"{prefix}_{kind.lower()}"] = _get(summary_of, "averages", kind)
  for task, entry in sorted((_get(summary, "tasks") or {}).items()):
    values[f"task/{task}"] = entry.get("score")
  return values


def aggregate(values_per_seed: Sequence[Mapping[str, Optional[float]]]) -> Dict[str, Stat]:
  """{metric: Stat over seeds} for one arm's runs."""
  metrics = sorted({m for values in values_per_seed for m in values})
  return {m: mean_spread(values.get(m) for values in values_per_seed) for m in metrics}


@dataclasses.dataclass(frozen=True)
class Comparison:
  """The method against one other arm on one metric; advantage > 0 means the method is better."""

  other: str
  advantage: float
  spread: Optional[float]

  @property
  def ratio(self) -> Optional[float]:
    if self.spread is None:
      return None
    if self.spread == 0:
      return 0.0 if self.advantage == 0 else math.inf
    return abs(self.advantage) / self.spread

  @property
  def verdict(self) -> str:
    """'win' / 'loss' (resolved), 'within' the seed spread, or 'unresolved' (no spread: one seed)."""
    if self.ratio is None:
      return "unresolved"
    if self.ratio <= CLEAR:
      return "within"
    return "win" if self.advantage > 0 else "loss"


def compare(method: Stat, other: Stat, other_name: str, metric: str) -> Optional[Comparison]:
  if method.mean is None or other.mean is None:
    return None
  sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
  spread = None
  if method.spread is not None and other.spread is not None:
    spread = math.sqrt(method.spread ** 2 + other.spread ** 2)
  return Comparison(other=other_name, advantage=sign * (method.mean - other.mean), spread=spread)


def format_stat(stat: Optional[Stat], digits: int) -> str:
  if stat is None or stat.mean is None:
    return "-"
  text = f"{stat.mean:.{digits}f}"
  return text if stat.spread is None else f"{text} ± {stat.spread:.{digits}f}"


def describe(c: Comparison, digits: int) -> str:
  """One clause: 'beats dense_matched by 0.052 (2.6x the seed spread)'."""
  size = f"{abs(c.advantage):.{digits}f}"
  if c.verdict == "unresolved":
    if c.advantage == 0:
      return f"ties with {c.other} (one seed: no spread)"
    return f"{'beats' if c.advantage > 0 else 'trails'} {c.other} by {size} (one seed: no spread to judge it by)"
  times = "an unbounded multiple of" if math.isinf(c.ratio) else f"{c.ratio:.1f}x"
  if c.verdict == "within":
    side = "better" if c.advantage > 0 else "worse" if c.advantage < 0 else "equal"
    return f"is within the seed spread of {c.other} ({size} {side}, {times} the spread)"
  return f"{'beats' if c.verdict == 'win' else 'loses to'} {c.other} by {size} ({times} the seed spread)"


def join_clauses(clauses: Sequence[str]) -> str:
  if len(clauses) <= 1:
    return "".join(clauses)
  return ", ".join(clauses[:-1]) + " and " + clauses[-1]
