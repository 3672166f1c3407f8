"""Finished run directories as the report reads them (local or gs://): metrics, evaluation summaries, analysis.

A path given to the report is a run directory (it has metrics/train.jsonl) or a folder of them: a study directory
(<arm>/seed<k>/) or any folder whose subfolders are runs. A run made by the study says which arm and seed it is in
study/arm.json; for any other run the arm is its folder's name (the parent's, for a seed<k> folder).
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from skip_t5x.study import files, layout
from skip_t5x.training import metrics_logging

_SEED_DIR = re.compile(r"^seed(\d+)$")


@dataclasses.dataclass
class RunData:
  """Everything the report uses from one run directory."""

  run_dir: str
  arm: str
  seed: Optional[int]
  group: str = ""
  family: str = ""
  label: str = ""
  reference_arm: Optional[str] = None
  method_arm: Optional[str] = None
  finished: bool = False
  train: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
  evals: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)  # 'eval', 'eval_<mixture>'
  analysis: Optional[Dict[str, Any]] = None
  timing: Optional[Dict[str, Any]] = None

  @property
  def summary(self) -> Optional[Dict[str, Any]]:
    """The primary evaluation summary (RUN/eval/summary.json)."""
    return self.evals.get("eval")


def is_run_dir(path: str) -> bool:
  return files.exists(metrics_logging.metrics_path(path))


def find_run_dirs(paths: Sequence[str]) -> List[str]:
  """Run directories in or under `paths` (two levels down at most), in the given order; ValueError if none."""
  found: List[str] = []
  for path in paths:
    path = path.rstrip("/")
    if is_run_dir(path):
      candidates = [path]
    else:
      pattern = os.path.join(path, "*", "seed*", "metrics", "train.jsonl")
      candidates = [os.path.dirname(os.path.dirname(p)) for p in files.glob(pattern)]
      if not candidates:
        candidates = [os.path.dirname(os.path.dirname(p))
                      for p in files.glob(os.path.join(path, "*", "metrics", "train.jsonl"))]
    if not candidates:
      raise ValueError(f"{path!r} holds no run: no metrics/train.jsonl in it, in <arm>/seed<k>/ or in <run>/")
    found += [c for c in candidates if c not in found]
  return found


def _identity(run_dir: str) -> Dict[str, Any]:
  """Arm and seed of a run that was not made by the study, from its folder names."""
  base = os.path.basename(run_dir.rstrip("/"))
  match = _SEED_DIR.match(base)
  if match:
    return {"arm": os.path.basename(os.path.dirname(run_dir.rstrip("/"))), "seed": int(match.group(1))}
  return {"arm": base, "seed": None}


def load_run(run_dir: str) -> RunData:
  meta = files.read_json(layout.arm_json(run_dir)) or _identity(run_dir)
  evals = {}
  for path in files.glob(os.path.join(run_dir, "eval*", "summary.json")):
    evals[os.path.basename(os.path.dirname(path))] = files.read_json(path)
  return RunData(
      run_dir=run_dir, arm=meta["arm"], seed=meta.get("seed"), group=meta.get("group", ""),
      family=meta.get("family", ""), label=meta.get("label", "") or meta["arm"],
      reference_arm=meta.get("reference_arm"), method_arm=meta.get("method_arm"),
      finished=files.exists(layout.done_json(run_dir)), train=files.read_train_metrics(run_dir), evals=evals,
      analysis=files.read_json(layout.analysis_json(run_dir)), timing=files.read_json(layout.timing_json(run_dir)))


def load_runs(paths: Sequence[str]) -> List[RunData]:
  return [load_run(run_dir) for run_dir in find_run_dirs(paths)]
