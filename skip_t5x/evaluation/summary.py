"""The evaluation summary: per-task scores, NLG / NLU / overall averages, realized skip ratio and FLOPs per token.

Written as DIR/eval/summary.json and DIR/eval/summary.md (a table like the paper's). Each task reports its
primary metric (TaskSpec.primary_metric: exact match, F1, F1a or accuracy, in percent), and beside it the chance
level where the metric function reports one (`chance_<metric>`: a uniformly random pick among a rank
classification's candidates); averages are unweighted means over the tasks present, as in the paper.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf

from skip_t5x.model import flops as flops_lib

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


def _spec(task_name: str):
  from skip_t5x.data import fewshot_tasks  # pylint: disable=import-outside-toplevel

  return fewshot_tasks.SPECS_BY_TASK_NAME.get(task_name)


def _scalar(value: Any) -> Optional[float]:
  value = getattr(value, "value", value)  # seqio metric objects carry .value
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


def flops_per_token(model, density: Optional[float], seq_len: int) -> Optional[Dict[str, float]]:
  """Analytic inference FLOPs per token (model/flops.py) at the measured density, and the dense equivalent."""
  config = getattr(model, "config", None)
  if config is None:
    return None
  result = {"dense": flops_lib.dense_flops_per_token(config, seq_len)}
  if density is not None:
    result["routed"] = flops_lib.total_flops_per_token(config, seq_len, density)
  return result


def build_summary(task_metrics: Mapping[str, Mapping[str, Any]], *, mixture_or_task_name: str,
                  step: Optional[int], model_dir: str, density: Optional[float],
                  flops_per_token: Optional[Mapping[str, float]] = None, model_config: Any = None) -> dict:
  """The summary dict (see module docstring) from seqio's {task: {metric: value}}."""
  tasks = {}
  for task_name in sorted(task_metrics):
    metrics = {k: _scalar(v) for k, v in task_metrics[task_name].items()}
    spec = _spec(task_name)
    primary = spec.primary_metric if spec else sorted(metrics)[0]
    if primary not in metrics:
      raise ValueError(f"task {task_name}: primary metric {primary!r} missing from {sorted(metrics)}")
    tasks[task_name] = {"kind": spec.kind if spec else "", "metric": primary, "score": metrics[primary],
                        "chance": metrics.get(f"chance_{primary}"),
                        "in_paper24": bool(spec.in_paper24) if spec else False, "metrics": metrics}

  def mean(kind: Optional[str]) -> Optional[float]:
    scores = [t["score"] for t in tasks.values() if (kind is None or t["kind"] == kind) and t["score"] is not None]
    return sum(scores) / len(scores) if scores else None

  routing = getattr(model_config, "routing", None)
  target_skip_ratio = None
  if routing is not None:
    target_skip_ratio = 0.0 if getattr(routing, "routed", "none") == "none" else routing.skip_ratio
    if getattr(routing, "inference_skip_ratio", None) is not None:  # elastic inference: run at another ratio
      target_skip_ratio = routing.inference_skip_ratio
  return {
      "mixture_or_task_name": mixture_or_task_name,
      "step": step,
      "model_dir": model_dir,
      "time": time.time(),
      "tasks": tasks,
      "averages": {"NLG": mean("NLG"), "NLU": mean("NLU"), "overall": mean(None)},
      "router_density": density,
      "realized_skip_ratio": None if density is None else 1.0 - density,
      "target_skip_ratio": target_skip_ratio,
      "flops_per_token": dict(flops_per_token) if flops_per_token else None,
  }


def _fmt(value: Optional[float], digits: int = 1) -> str:
  return "-" if value is None else f"{value:.{digits}f}"


def _fmt_flops(value: Optional[float]) -> str:
  if value is None:
    return "-"
  for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
    if value >= scale:
      return f"{value / scale:.2f}{unit}"
  return f"{value:.0f}"


def _elastic_line(elastic: Optional[Mapping[str, Any]]) -> list:
  if not elastic:
    return []
  return [f"Elastic inference: trained at skip ratio {_fmt(elastic.get('trained_skip_ratio'), 3)}, run at "
          f"{_fmt(elastic.get('target_skip_ratio'), 3)} (thresholds calibrated on {elastic.get('calibration_tokens')}"
          f" held-out tokens, where the skip ratio was {_fmt(elastic.get('realized_skip_ratio'), 3)}).", ""]


def markdown(summary: Mapping[str, Any]) -> str:
  """A paper-like table: one row per task, then the averages, then the routing and cost figures."""
  flops = summary.get("flops_per_token") or {}
  lines = [
      f"# 1-shot evaluation: {summary['mixture_or_task_name']} (step {summary.get('step')})",
      "",
      f"Realized skip ratio: {_fmt(summary.get('realized_skip_ratio'), 3)} "
      f"(target {_fmt(summary.get('target_skip_ratio'), 3)}); "
      f"inference FLOPs/token: {_fmt_flops(flops.get('routed'))} routed, {_fmt_flops(flops.get('dense'))} dense.",
      "",
      *_elastic_line(summary.get("elastic")),
      "| Task | Kind | Metric | Score | Chance |",
      "|---|---|---|---:|---:|",
  ]
  for name, task in summary["tasks"].items():
    lines.append(f"| {name} | {task['kind']} | {task['metric']} | {_fmt(task['score'])} "
                 f"| {_fmt(task.get('chance'))} |")
  averages = summary["averages"]
  lines += [
      f"| **NLG average** | NLG | | {_fmt(averages['NLG'])} | |",
      f"| **NLU average** | NLU | | {_fmt(averages['NLU'])} | |",
      f"| **Overall average** | all | | {_fmt(averages['overall'])} | |",
      "",
  ]
  return "\n".join(lines)


def write_summary(summary: Mapping[str, Any], output_dir: str) -> Dict[str, str]:
  """Writes summary.json and summary.md into `output_dir`; returns their paths."""
  tf.io.gfile.makedirs(output_dir)
  paths = {"json": os.path.join(output_dir, SUMMARY_JSON), "md": os.path.join(output_dir, SUMMARY_MD)}
  with tf.io.gfile.GFile(paths["json"], "w") as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  with tf.io.gfile.GFile(paths["md"], "w") as f:
    f.write(markdown(summary))
  return paths
