"""When a work unit dies, run it again: the restart policy both executors share.

A training work unit resumes from its last checkpoint when it is started again with the same model_dir, so a
preempted or crashed unit is restarted as a whole (every process, or the whole TPU slice re-created), after a
back-off, at most `max_restarts` times. A command that refused its input (exit status 2: a bad config, another
model in the model dir, a locked model dir) is not restarted: it would only refuse again.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

REFUSED_EXIT_CODE = 2  # skip_t5x commands: a known fault, reported in one 'error:' line


@dataclasses.dataclass(frozen=True)
class RestartPolicy:
  """How often and how patiently a failed work unit is restarted.

  Attributes:
    max_restarts: restarts after the first attempt (0: never restart).
    backoff_s: wait before the first restart; each further restart waits `backoff_factor` times longer, at most
      `max_backoff_s` (a preempted slot or a lost peer often needs a while to come back).
    no_restart_exit_codes: exit statuses that mean "do not try again".
  """

  max_restarts: int = 0
  backoff_s: float = 10.0
  backoff_factor: float = 2.0
  max_backoff_s: float = 600.0
  no_restart_exit_codes: tuple[int, ...] = (REFUSED_EXIT_CODE,)

  def __post_init__(self):
    if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int) or self.max_restarts < 0:
      raise ValueError(f"max_restarts {self.max_restarts!r} must be an int >= 0")
    if self.backoff_s < 0 or self.max_backoff_s < 0:
      raise ValueError(f"backoff_s {self.backoff_s!r} and max_backoff_s {self.max_backoff_s!r} must be >= 0")
    if self.backoff_factor < 1:
      raise ValueError(f"backoff_factor {self.backoff_factor!r} must be >= 1")

  def delay_s(self, restart: int) -> float:
    """Seconds to wait before restart number `restart` (1-based)."""
    return min(self.backoff_s * self.backoff_factor ** (restart - 1), self.max_backoff_s)

  def should_restart(self, returncode: Optional[int], restarts_done: int) -> bool:
    """Whether a unit that failed with `returncode` (None: stopped while hanging) gets another attempt."""
    return restarts_done < self.max_restarts and returncode not in self.no_restart_exit_codes

  def describe(self) -> str:
    return (f"up to {self.max_restarts} restart(s), waiting {self.backoff_s:g} s x{self.backoff_factor:g} "
            f"(at most {self.max_backoff_s:g} s); exit status {list(self.no_restart_exit_codes)} is not restarted")
