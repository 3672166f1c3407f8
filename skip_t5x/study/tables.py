"""The report's markdown tables: one row per arm (mean ± spread over seeds), 1-shot scores per task with chance,
and the tokens that skip most and least often."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from skip_t5x.study.stats import ArmResult, Stat, format_stat

MAIN_COLUMNS = ("Arm", "Family", "Seeds", "Layers", "Params", "Train FLOPs/tok", "Infer FLOPs/tok", "x ref",
                "Skip train / eval", "Final train loss", "Held-out loss", "Held-out ppl", "1-shot NLU", "NLG",
                "Overall", "Step time masked (x ref)", "gather (x ref)")


def format_count(value: Optional[float]) -> str:
  if value is None:
    return "-"
  for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
    if abs(value) >= scale:
      return f"{value / scale:.2f}{unit}"
  return f"{value:.0f}"


def _mean(arm: ArmResult, metric: str) -> Optional[float]:
  stat = arm.stats.get(metric)
  return None if stat is None else stat.mean


def ratio(arm: ArmResult, reference: Optional[ArmResult], metric: str) -> Optional[float]:
  own, ref = _mean(arm, metric), None if reference is None else _mean(reference, metric)
  return None if own is None or not ref else own / ref


def _time_cell(arm: ArmResult, reference: Optional[ArmResult], metric: str) -> str:
  seconds, rel = _mean(arm, metric), ratio(arm, reference, metric)
  if seconds is None:
    return "-"
  return f"{1000 * seconds:.0f} ms" + (f" ({rel:.2f}x)" if rel is not None else "")


def main_row(arm: ArmResult, reference: Optional[ArmResult]) -> List[str]:
  s = arm.stats
  skip = f"{format_stat(s.get('train_skip'), 2)} / {format_stat(s.get('eval_skip'), 2)}"
  infer_ratio = ratio(arm, reference, "infer_flops")
  return [
      arm.name, arm.family or "-", str(len(arm.runs)), format_count(_mean(arm, "layers")),
      format_count(_mean(arm, "params")), format_count(_mean(arm, "train_flops")),
      format_count(_mean(arm, "infer_flops")), "-" if infer_ratio is None else f"{infer_ratio:.2f}",
      skip, format_stat(s.get("final_train_loss"), 3), format_stat(s.get("heldout_loss"), 3),
      format_stat(s.get("heldout_ppl"), 1), format_stat(s.get("oneshot_nlu"), 1),
      format_stat(s.get("oneshot_nlg"), 1), format_stat(s.get("oneshot_overall"), 1),
      _time_cell(arm, reference, "time_masked"), _time_cell(arm, reference, "time_gather"),
  ]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
  align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def main_table(arms: Sequence[ArmResult], references: Dict[str, Optional[ArmResult]]) -> str:
  """One row per arm; `references` maps each arm's group to its matched dense arm (the 'x ref' columns)."""
  rows = [main_row(arm, references.get(arm.group)) for arm in arms]
  return markdown_table(MAIN_COLUMNS, rows, numeric_from=3)


def task_table(arms: Sequence[ArmResult]) -> str:
  """1-shot score per task (mean ± spread) per arm, beside the task's chance level."""
  tasks: Dict[str, dict] = {}
  for arm in arms:
    for run in arm.runs:
      for name, entry in ((run.summary or {}).get("tasks") or {}).items():
        tasks.setdefault(name, entry)
  if not tasks:
    return "No 1-shot evaluation summaries (RUN/eval/summary.json) were found."
  header = ["Task", "Kind", "Metric", "Chance", *[arm.name for arm in arms]]
  rows = []
  for name, entry in sorted(tasks.items()):
    chance = entry.get("chance")
    scores = [format_stat(arm.stats.get(f"task/{name}"), 1) for arm in arms]
    rows.append([name, entry.get("kind", ""), entry.get("metric", ""),
                 "-" if chance is None else f"{chance:.1f}", *scores])
  return markdown_table(header, rows, numeric_from=3)


def extra_eval_table(arms: Sequence[ArmResult]) -> Optional[str]:
  """Averages of the evaluation mixtures after the first (RUN/eval_<mixture>/), or None when there are none."""
  mixtures = sorted({m[len("oneshot["):m.index("]")] for arm in arms for m in arm.stats if m.startswith("oneshot[")})
  if not mixtures:
    return None
  header = ["Arm", *[f"{mixture} {kind}" for mixture in mixtures for kind in ("NLU", "NLG", "overall")]]
  rows = [[arm.name, *[format_stat(arm.stats.get(f"oneshot[{mixture}]_{kind}"), 1)
                       for mixture in mixtures for kind in ("nlu", "nlg", "overall")]] for arm in arms]
  return markdown_table(header, rows)


def escape(text: str) -> str:
  """A token as a markdown table cell can show it."""
  return text.replace("|", "\\|").replace("`", "'")


def token_table(analysis: Optional[dict]) -> str:
  """Most and least often skipped tokens of one run (its held-out routing tally)."""
  lists = (analysis or {}).get("tokens") or {}
  most, least = lists.get("most_skipped") or [], lists.get("least_skipped") or []
  if not most:
    return "No routing statistics (the arm has no routers, or its analysis is missing)."
  header = ["Skips most", "seen", "skip %", "Skips least", "seen", "skip %"]
  rows = []
  for i in range(max(len(most), len(least))):
    row = []
    for entries in (most, least):
      if i < len(entries):
        e = entries[i]
        row += [f"`{escape(e['token'])}`", str(e["occurrences"]), f"{100 * e['skip_fraction']:.0f}"]
      else:
        row += ["", "", ""]
    rows.append(row)
  return markdown_table(header, rows, numeric_from=1)


def stat_json(stat: Stat) -> dict:
  return {"mean": stat.mean, "spread": stat.spread, "n": stat.n}
