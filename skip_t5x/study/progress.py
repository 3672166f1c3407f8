"""Progress of a study: which run of how many, its training step, and the whole study's share done and ETA.

Each run counts as one unit of work: training is its first TRAIN_SHARE (advanced by the training command's
'step S/N' lines), evaluation the rest. The ETA divides the time this session has spent by the work it has done,
so runs finished by an earlier session (skipped) do not make it optimistic. Thread-safe: several runs may train
at once.
"""
from __future__ import annotations

import datetime
import math
import re
import threading
import time
from typing import Callable, Dict, Optional

TRAIN_SHARE = 0.75
STEP_LINE = re.compile(r"^step (\d+)/(\d+)\b")


def format_duration(seconds: Optional[float]) -> str:
  if seconds is None or not math.isfinite(seconds):
    return "?"
  return str(datetime.timedelta(seconds=int(max(seconds, 0.0))))


class StudyProgress:
  """How far the runs of this session have got; `prefix` labels every streamed line."""

  def __init__(self, total_runs: int, clock: Callable[[], float] = time.monotonic):
    self.total_runs = total_runs
    self.clock = clock
    self.start = clock()
    self.previously_done = 0  # finished by an earlier session
    self.fractions: Dict[str, float] = {}  # this session's runs: share of each done, in [0, 1]
    self.lock = threading.Lock()

  def skip(self) -> None:
    """A run that an earlier session finished."""
    with self.lock:
      self.previously_done += 1

  def set_fraction(self, key: str, fraction: float) -> None:
    with self.lock:
      self.fractions[key] = min(max(fraction, 0.0), 1.0)

  def observe(self, key: str, line: str) -> None:
    """Advances `key` from a training progress line ('step 40/200 | ...')."""
    match = STEP_LINE.match(line)
    if match and int(match.group(2)) > 0:
      self.set_fraction(key, TRAIN_SHARE * int(match.group(1)) / int(match.group(2)))

  def overall(self):
    """(share of the study done in [0, 1], ETA in seconds or None before any work is measured)."""
    with self.lock:
      work = sum(self.fractions.values())
      done = self.previously_done + work
    remaining = max(self.total_runs - done, 0.0)
    elapsed = self.clock() - self.start
    eta = elapsed / work * remaining if work > 1e-6 else None
    return (done / self.total_runs if self.total_runs else 1.0), eta

  def prefix(self, index: int, key: str) -> str:
    """'[3/18 skip_p50/seed0 | study 14%, ETA 0:23:10]'."""
    share, eta = self.overall()
    return f"[{index}/{self.total_runs} {key} | study {100 * share:.0f}%, ETA {format_duration(eta)}]"
