"""The report's figures (matplotlib, PNG bytes): quality against inference FLOPs per token, training curves of all
arms, realized density per routed layer, and the token-skipping analysis of one run."""
from __future__ import annotations

import io
import re
from typing import Dict, List, Optional, Sequence

from skip_t5x.study.stats import ArmResult

FAMILY_MARKERS = {"dense": "s", "method": "o", "baseline": "^", "ablation": "D"}
_LAYER = re.compile(r"layer_(\d+)")
MAX_LABEL = 12  # characters of a token shown on an axis


def _label(token: str) -> str:
  return token if len(token) <= MAX_LABEL else token[:MAX_LABEL - 1] + "…"


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def _png(fig, tight: bool = True) -> bytes:
  buffer = io.BytesIO()
  if tight:
    fig.tight_layout()
  fig.savefig(buffer, format="png", dpi=100)
  _pyplot().close(fig)
  return buffer.getvalue()


def _colors(arms: Sequence[ArmResult]) -> Dict[str, str]:
  palette = _pyplot().get_cmap("tab10" if len(arms) <= 10 else "tab20")
  return {arm.name: palette(i % palette.N) for i, arm in enumerate(arms)}


def _mean(arm: ArmResult, metric: str):
  stat = arm.stats.get(metric)
  return (None, None) if stat is None or stat.mean is None else (stat.mean, stat.spread or 0.0)


def quality_vs_flops(arms: Sequence[ArmResult]) -> bytes:
  """Held-out loss and the 1-shot average against inference FLOPs per token; the dense family joined per group."""
  plt = _pyplot()
  colors = _colors(arms)
  fig, axes = plt.subplots(1, 2, figsize=(13, 5))
  for ax, metric, title in ((axes[0], "heldout_loss", "held-out loss (lower is better)"),
                            (axes[1], "oneshot_overall", "1-shot average (higher is better)")):
    frontier: Dict[str, List[tuple]] = {}
    for arm in arms:
      x, _ = _mean(arm, "infer_flops")
      y, spread = _mean(arm, metric)
      if x is None or y is None:
        continue
      ax.errorbar([x / 1e6], [y], yerr=[spread], fmt=FAMILY_MARKERS.get(arm.family, "o"), color=colors[arm.name],
                  capsize=4, label=arm.name)
      ax.annotate(arm.name, (x / 1e6, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
      if arm.family == "dense":
        frontier.setdefault(arm.group, []).append((x / 1e6, y))
    for points in (p for p in frontier.values() if len(p) > 1):
      points.sort()
      ax.plot([p[0] for p in points], [p[1] for p in points], "k--", linewidth=1, label="dense frontier")
    ax.set_xlabel("inference MFLOPs per token (at the realized density)")
    ax.set_title(title)
  handles, labels = axes[0].get_legend_handles_labels()
  unique = dict(zip(labels, handles))
  fig.tight_layout()
  fig.subplots_adjust(bottom=0.22)
  fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(len(unique), 6), fontsize=7)
  return _png(fig, tight=False)


def training_curves(arms: Sequence[ArmResult]) -> bytes:
  """Training loss and realized density against step, every run of every arm (one color per arm)."""
  plt = _pyplot()
  colors = _colors(arms)
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
  for arm in arms:
    for index, run in enumerate(arm.runs):
      steps = [r["step"] for r in run.train]
      label = arm.name if index == 0 else None
      axes[0].plot(steps, [r.get("loss", float("nan")) for r in run.train], color=colors[arm.name], linewidth=1,
                   label=label)
      if any("router/density" in r for r in run.train):
        axes[1].plot(steps, [r.get("router/density", float("nan")) for r in run.train], color=colors[arm.name],
                     linewidth=1, label=label)
  axes[0].set_title("training loss")
  axes[1].set_title("realized execute density while training (mean over routed modules)")
  axes[1].set_ylim(0, 1.05)
  for ax in axes:
    ax.set_xlabel("step")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  return _png(fig)


def density_per_layer(arms: Sequence[ArmResult]) -> Optional[bytes]:
  """Held-out execute density of each routed module (mean over seeds) against its layer index."""
  plt = _pyplot()
  colors = _colors(arms)
  fig, ax = plt.subplots(figsize=(9, 4.5))
  drawn = False
  for arm in arms:
    per_module: Dict[str, List[float]] = {}
    for run in arm.runs:
      for module, density in (((run.analysis or {}).get("heldout") or {}).get("density_per_module") or {}).items():
        per_module.setdefault(module, []).append(density)
    if not per_module:
      continue
    points = sorted((int(_LAYER.match(m).group(1)), sum(v) / len(v)) for m, v in per_module.items()
                    if _LAYER.match(m))
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=colors[arm.name], label=arm.name)
    drawn = True
  if not drawn:
    plt.close(fig)
    return None
  ax.set_xlabel("layer")
  ax.set_ylabel("execute density (held-out, argmax routing)")
  ax.set_ylim(0, 1.05)
  ax.legend(fontsize=7)
  return _png(fig)


def token_skipping(analysis: Optional[dict], arm_name: str) -> Optional[bytes]:
  """Which tokens of a sample passage execute which routed module, and the tokens that skip most and least."""
  sample, lists = (analysis or {}).get("sample"), (analysis or {}).get("tokens") or {}
  if not sample or not sample.get("execute"):
    return None
  plt = _pyplot()
  fig, axes = plt.subplots(2, 1, figsize=(14, 8), gridspec_kw={"height_ratios": [1, 1.2]})
  ax = axes[0]
  ax.imshow(sample["execute"], aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest")
  ax.set_yticks(range(len(sample["modules"])), sample["modules"], fontsize=7)
  ax.set_xticks(range(len(sample["tokens"])), [_label(t) for t in sample["tokens"]], rotation=90, fontsize=7)
  ax.set_title(f"{arm_name}: routed modules executed (green) per token of a held-out passage")
  ax = axes[1]
  most, least = lists.get("most_skipped") or [], lists.get("least_skipped") or []
  entries = most + least[::-1]
  labels = [f"{_label(e['token'])} ({e['occurrences']})" for e in entries]
  ax.barh(range(len(entries)), [e["skip_fraction"] for e in entries],
          color=["tab:red"] * len(most) + ["tab:blue"] * len(least))
  ax.set_yticks(range(len(entries)), labels, fontsize=7)
  ax.invert_yaxis()
  ax.set_xlim(0, 1)
  ax.set_xlabel("skip fraction over held-out occurrences x routed modules (occurrences in brackets)")
  ax.set_title("tokens that skip most (red) and least (blue)")
  return _png(fig)
