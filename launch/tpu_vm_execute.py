"""Running a tpu_vm plan for real: package once, then every TPU in its own thread, restarting failed work units.

A TPU runs its steps in order and stops at the first failing one. A failed `run` (the slice was preempted, a
worker was lost) or a queued resource that turned FAILED/SUSPENDED while waiting is restarted as
`TpuVm.restart` allows: the TPU (queued resource) is deleted and created again, the source copied and installed
again, and the failed work unit runs again; a training run resumes from its last checkpoint. A run that exits
with status 2 (a refused config or input) is not restarted.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Callable, Sequence

from launch.experiment import Experiment
from launch.tpu_vm import Step, TpuPlan, TpuVm, plan, recovery_steps

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class StepFailed(RuntimeError):
  """A step's command failed; `returncode` is None when a wait saw its resource fail."""

  def __init__(self, message: str, phase: str, returncode: int | None):
    super().__init__(message)
    self.phase, self.returncode = phase, returncode


def _default_runner(argv: Sequence[str]) -> "subprocess.CompletedProcess[str]":
  return subprocess.run(list(argv), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _run_step(step: Step, cfg: TpuVm, runner: Runner, log: Callable[[str], None]) -> None:
  log(f"[{step.phase}] {step.display()}")
  if step.poll_until is None:
    result = runner(step.argv)
    log(result.stdout or "")
    if result.returncode != 0:
      raise StepFailed(f"{step.phase} failed with exit code {result.returncode}: {step.display()}",
                       step.phase, result.returncode)
    return
  deadline = time.monotonic() + cfg.wait_timeout_s
  while True:
    result = runner(step.argv)
    state = (result.stdout or "").strip()
    if result.returncode == 0 and state == step.poll_until:
      return
    if state in ("FAILED", "SUSPENDED"):
      raise StepFailed(f"queued resource reached state {state} while waiting for {step.poll_until}", step.phase,
                       None)
    if time.monotonic() > deadline:
      raise TimeoutError(f"not {step.poll_until} after {cfg.wait_timeout_s:.0f} s (last state {state!r})")
    time.sleep(cfg.poll_interval_s)


def _drive(tpu: TpuPlan, cfg: TpuVm, runner: Runner, log: Callable[[str], None],
           sleep: Callable[[float], None]) -> None:
  """The TPU's steps in order; a failed wait or run restarts the TPU and retries as the policy allows."""
  recovery = recovery_steps(tpu)  # delete, create, wait, copy, install
  restarts = 0

  def with_restarts(steps: Sequence[Step]) -> None:
    nonlocal restarts
    pending = list(steps)
    while True:
      try:
        for step in pending:
          _run_step(step, cfg, runner, log)
        return
      except StepFailed as e:
        if e.phase not in ("wait", "run") or not cfg.restart.should_restart(e.returncode, restarts):
          raise
        restarts += 1
        delay = cfg.restart.delay_s(restarts)
        log(f"{e}; restart {restarts}/{cfg.restart.max_restarts} in {delay:g} s: re-creating the TPU")
        sleep(delay)
        try:
          _run_step(recovery[0], cfg, runner, log)  # may fail when the resource is already gone
        except StepFailed as delete_error:
          log(f"(ignored) {delete_error}")
        pending = recovery[1:] + [step for step in steps if step.phase == "run"]

  with_restarts([s for s in tpu.steps if s.phase in ("create", "wait", "copy", "install")])
  for step in tpu.steps:
    if step.phase == "run":
      with_restarts([step])


def execute(experiment: Experiment, cfg: TpuVm, only: Sequence[int] | None = None,
            runner: Runner | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
  """Runs the plan for real: package once, then every TPU in its own thread. Returns 0 if all succeeded."""
  runner = runner or _default_runner
  package, tpus = plan(experiment, cfg, only)
  lock = threading.Lock()

  def log(prefix: str, text: str) -> None:
    with lock:
      for line in text.rstrip("\n").splitlines():
        print(f"{prefix}{line}", flush=True)

  _run_step(package, cfg, runner, lambda t: log("", t))
  failures: dict[str, str] = {}

  def drive(tpu: TpuPlan) -> None:
    tpu_log = lambda t: log(f"[{tpu.tpu_name}] ", t)  # noqa: E731
    try:
      _drive(tpu, cfg, runner, tpu_log, sleep)
    except Exception as e:  # noqa: BLE001  (reported below, the other TPUs keep going)
      failures[tpu.tpu_name] = str(e)
    finally:
      if cfg.delete_when_done:
        try:
          _run_step(tpu.steps[-1], cfg, runner, tpu_log)
        except Exception as e:  # noqa: BLE001
          failures.setdefault(tpu.tpu_name, str(e))

  threads = [threading.Thread(target=drive, args=(t,), name=t.tpu_name) for t in tpus]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  for name, message in failures.items():
    print(f"TPU {name} failed: {message}", file=sys.stderr)
  return 1 if failures else 0
