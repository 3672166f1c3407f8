"""The study report from any set of run directories: DIR/report.md, DIR/report.json and PNGs beside them.

Runs are grouped into arms (one run per seed); each arm gets the mean and spread of every number over its seeds
(stats.py). Within each size group the method is compared with the matched dense arm and each baseline
(headline.py); the tables and figures are tables.py and plots.py. Inputs are only files (runs.py), so the report
can be rebuilt anywhere, from local or gs:// directories, without the models.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Sequence

from skip_t5x.study import files, headline, layout, plots, runs as runs_lib, stats, tables

FAMILY_ORDER = ("dense", "method", "baseline", "ablation", "")
PLOTS = {"quality": "quality_vs_flops.png", "curves": "training_curves.png", "density": "density_per_layer.png",
         "tokens": "token_skipping.png"}


@dataclasses.dataclass
class Report:
  markdown: str
  table: str  # the main table alone (what the study command prints)
  data: dict  # what report.json holds
  paths: Dict[str, str]


def arm_order(paths: Sequence[str]) -> List[str]:
  """Arm names in study order, from the first STUDY_DIR/study.json among `paths` ([] if none)."""
  for path in paths:
    study = files.read_json(os.path.join(path, layout.STUDY_JSON))
    if study:
      return [arm["name"] for arm in study.get("arms", [])]
  return []


def group_arms(runs: Sequence[runs_lib.RunData], order: Sequence[str]) -> List[stats.ArmResult]:
  by_arm: Dict[str, List[runs_lib.RunData]] = {}
  for run in runs:
    by_arm.setdefault(run.arm, []).append(run)
  arms = []
  for name, arm_runs in by_arm.items():
    arm_runs.sort(key=lambda r: (r.seed is None, r.seed))
    first = arm_runs[0]
    arms.append(stats.ArmResult(name=name, group=first.group, family=first.family, label=first.label,
                                runs=arm_runs, stats=stats.aggregate([stats.run_values(r) for r in arm_runs])))

  def key(arm):
    known = arm.name in order
    family = FAMILY_ORDER.index(arm.family) if arm.family in FAMILY_ORDER else len(FAMILY_ORDER)
    return (arm.group, not known, order.index(arm.name) if known else family, arm.name)

  return sorted(arms, key=key)


def roles(arms: Sequence[stats.ArmResult], group: str, reference: Optional[str], method: Optional[str]):
  """(reference, method) names for a group: given ones (with the group's suffix), else what the runs recorded."""
  names = {a.name for a in arms if a.group == group}
  suffix = f"_{group}" if group else ""

  def pick(given, attribute):
    if given:
      return given + suffix if given + suffix in names else given
    recorded = [getattr(r, attribute) for a in arms if a.group == group for r in a.runs if getattr(r, attribute)]
    return recorded[0] if recorded else None

  return pick(reference, "reference_arm"), pick(method, "method_arm")


def headlines(arms: Sequence[stats.ArmResult], reference: Optional[str], method: Optional[str]) -> Dict[str, dict]:
  """Per size group: its reference and method arms and the three sentences."""
  out = {}
  by_name = {a.name: a for a in arms}
  for group in sorted({a.group for a in arms}):
    ref, meth = roles(arms, group, reference, method)
    if not meth or meth not in by_name:
      sentences = [f"No method arm to compare ({meth or 'none given'}): pass --method and --reference."]
    else:
      baselines = [a.name for a in arms if a.group == group and a.family == "baseline"]
      group_stats = {a.name: a.stats for a in arms if a.group == group}
      sentences = headline.headline(group_stats, meth, ref or "", baselines)
    out[group] = {"reference": ref, "method": meth, "sentences": sentences}
  return out


def render_markdown(arms, heads, table, image_names: Dict[str, str]) -> str:
  lines = ["# Study report", ""]
  for group, head in heads.items():
    lines += [(f"**{group}.** " if group else "") + " ".join(head["sentences"]), ""]
  lines += ["## Arms (mean ± spread over seeds)", "", table, "", NOTES, ""]
  if "quality" in image_names:
    lines += ["## Quality against inference FLOPs", "", f"![quality vs FLOPs]({image_names['quality']})", ""]
  lines += ["## 1-shot scores per task", "", tables.task_table(arms), ""]
  extra = tables.extra_eval_table(arms)
  if extra:
    lines += ["## Other evaluation mixtures (averages)", "", extra, ""]
  lines += ["## Training curves", "", f"![training curves]({image_names['curves']})", ""]
  if "density" in image_names:
    lines += ["## Realized density per routed layer", "", f"![density per layer]({image_names['density']})", ""]
  for group, head in heads.items():
    method = next((a for a in arms if a.name == head["method"]), None)
    analysis = next((r.analysis for r in method.runs if r.analysis), None) if method else None
    if analysis:
      lines += [f"## Token skipping: {method.name}", ""]
      if "tokens" in image_names and group == next(iter(heads)):
        lines += [f"![token skipping]({image_names['tokens']})", ""]
      lines += [tables.token_table(analysis), ""]
  lines += ["## Runs", "", *[f"- {a.name} seed {r.seed}: `{r.run_dir}`" + ("" if r.finished else " (not finished)")
                             for a in arms for r in a.runs], ""]
  return "\n".join(lines)


NOTES = """Spread: the sample standard deviation over seeds (none with one seed). A difference counts as resolved when
it exceeds twice the spread of the difference, sqrt(s_a^2 + s_b^2). FLOPs per token are analytic (model/flops.py) at
the training sequence length: training FLOPs at the mean density training realized, inference FLOPs at the
density the 1-shot evaluation realized (argmax routing). Skip: 1 - realized density. Held-out loss: token cross
entropy over the validation split (argmax routing). Step time: median jitted train step, all arms timed side by
side in one process on one batch, relative to the matched dense arm."""


def build_report(paths: Sequence[str], out_dir: str, reference: Optional[str] = None,
                 method: Optional[str] = None) -> Report:
  """Reads the runs under `paths`, writes OUT_DIR/report.md, report.json and the PNGs; returns the report."""
  arms = group_arms(runs_lib.load_runs(paths), arm_order(paths))
  heads = headlines(arms, reference, method)
  references = {g: next((a for a in arms if a.name == h["reference"]), None) for g, h in heads.items()}
  table = tables.main_table(arms, references)
  first_method = next((a for a in arms if a.name == next(iter(heads.values()))["method"]), None)
  figures = {"quality": plots.quality_vs_flops(arms), "curves": plots.training_curves(arms),
             "density": plots.density_per_layer(arms),
             "tokens": plots.token_skipping(next((r.analysis for r in first_method.runs if r.analysis), None),
                                            first_method.name) if first_method else None}
  paths_out = {name: files.write_bytes(os.path.join(out_dir, PLOTS[name]), png)
               for name, png in figures.items() if png}
  image_names = {name: os.path.basename(path) for name, path in paths_out.items()}
  markdown = render_markdown(arms, heads, table, image_names)
  data = {"headline": heads, "arms": {a.name: arm_json(a) for a in arms}}
  paths_out["markdown"] = files.write_text(os.path.join(out_dir, layout.REPORT_MD), markdown)
  paths_out["json"] = files.write_json(os.path.join(out_dir, layout.REPORT_JSON), data)
  return Report(markdown=markdown, table=table, data=data, paths=paths_out)


def arm_json(arm: stats.ArmResult) -> dict:
  return {"group": arm.group, "family": arm.family, "label": arm.label, "seeds": arm.seeds,
          "runs": [r.run_dir for r in arm.runs], "finished": [r.finished for r in arm.runs],
          "stats": {m: tables.stat_json(s) for m, s in arm.stats.items()}}
