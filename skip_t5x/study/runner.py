"""Runs a study's arms: for each arm and seed, `python -m skip_t5x.train` then `python -m skip_t5x.eval` as
subprocesses (a fresh gin state each, exactly what a user would type), their output streamed with an arm prefix.

A run whose RUN/study/done.json exists (written after its evaluation) is finished and is not run again. Any other
run is started with the same commands: the training command resumes from the run's latest checkpoint by itself,
so an interrupted study picks up where it stopped. Ctrl-C or SIGTERM sends SIGTERM to the running commands (the
training command saves a checkpoint on it) and ends the study; running it again resumes. A failed run is reported
and the others go on.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, TextIO

from skip_t5x.study import files, layout
from skip_t5x.study import spec as spec_lib
from skip_t5x.study.progress import TRAIN_SHARE, StudyProgress

TERMINATE_GRACE_S = 120.0  # a terminated training command saves a checkpoint before it exits
FAILURE_TAIL_LINES = 15


class StudyInterrupted(Exception):
  """Ctrl-C or SIGTERM: the running commands were stopped; running the study again resumes it."""


class RunFailed(Exception):
  """A train or eval command of one run exited with an error."""


@dataclasses.dataclass
class Outcome:
  finished: List[spec_lib.ArmRun]  # done now or by an earlier session
  failed: Dict[str, str]  # run key -> why


def run_metadata(study: spec_lib.Study, run: spec_lib.ArmRun, python: str, search_paths: Sequence[str] = ()
                 ) -> dict:
  """RUN/study/arm.json: which arm and seed this is, its role in the study and its exact commands."""
  suffix = f"_{run.arm.group}" if run.arm.group else ""
  return {
      "study": study.name, "arm": run.arm.name, "base_name": run.arm.base_name, "group": run.arm.group,
      "family": run.arm.family, "label": run.arm.label, "seed": run.seed,
      "reference_arm": study.reference_arm + suffix, "method_arm": study.method_arm + suffix,
      "train_tokens": study.tokens_per_arm, "overrides": run.arm.overrides,
      "train_command": spec_lib.train_argv(study, run, python, search_paths),
      "eval_commands": [argv for _, argv in spec_lib.eval_argvs(study, run, python, search_paths)],
  }


def local_log_path(run: spec_lib.ArmRun, phase: str) -> str:
  """The run's log file; a run directory on gs:// logs to a local folder instead."""
  path = layout.log_path(run.run_dir, phase)
  if files.is_remote(path):
    path = os.path.join(tempfile.gettempdir(), "skip_t5x_study_logs", run.arm.name, f"seed{run.seed}", f"{phase}.log")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  return path


class StudyRunner:
  """Trains and evaluates `runs` (arm-major), `study.jobs` at a time."""

  def __init__(self, study: spec_lib.Study, runs: Sequence[spec_lib.ArmRun], *, python: str = sys.executable,
               env: Optional[Dict[str, str]] = None, out: Optional[TextIO] = None, search_paths: Sequence[str] = ()):
    self.study, self.runs, self.python, self.search_paths = study, list(runs), python, list(search_paths)
    self.env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    self.out = out or sys.stdout
    self.progress = StudyProgress(len(self.runs))
    self.print_lock = threading.Lock()
    self.active: Dict[str, subprocess.Popen] = {}
    self.stopping = False

  def say(self, text: str) -> None:
    with self.print_lock:
      print(text, file=self.out, flush=True)

  def active_procs(self) -> List[subprocess.Popen]:
    with self.print_lock:
      return list(self.active.values())

  def run(self) -> Outcome:
    outcome = Outcome(finished=[], failed={})
    todo = []
    for index, run in enumerate(self.runs, 1):
      if files.exists(layout.done_json(run.run_dir)):
        self.progress.skip()
        self.say(f"{self.progress.prefix(index, run.key)} finished earlier: {run.run_dir}")
        outcome.finished.append(run)
      else:
        todo.append((index, run))
    with _sigterm_as_interrupt():
      try:
        self._run_all(todo, outcome)
      except KeyboardInterrupt as e:
        self.stopping = True
        _terminate(self.active_procs())
        raise StudyInterrupted("study interrupted: run the same command again to resume it") from e
    outcome.finished.sort(key=self.runs.index)
    return outcome

  def _run_all(self, todo, outcome: Outcome) -> None:
    def one(index, run):
      error = self.run_one(index, run)
      if error is None:
        outcome.finished.append(run)
      elif not self.stopping:
        outcome.failed[run.key] = error

    if self.study.jobs == 1:
      for index, run in todo:
        one(index, run)
      return
    with concurrent.futures.ThreadPoolExecutor(self.study.jobs) as pool:
      futures = [pool.submit(one, index, run) for index, run in todo]
      try:
        while not all(f.done() for f in futures):
          time.sleep(0.2)  # the main thread stays interruptible
      except KeyboardInterrupt:
        self.stopping = True
        _terminate(self.active_procs())  # before the pool waits for its threads
        raise
      for f in futures:
        f.result()

  def run_one(self, index: int, run: spec_lib.ArmRun) -> Optional[str]:
    """Trains then evaluates one run; returns None on success, else why it failed."""
    files.write_json(layout.arm_json(run.run_dir), run_metadata(self.study, run, self.python, self.search_paths))
    files.remove(layout.analysis_json(run.run_dir))  # stale once the run trains or evaluates again
    try:
      self.progress.set_fraction(run.key, 0.0)
      self.phase(index, run, "train", spec_lib.train_argv(self.study, run, self.python, self.search_paths))
      check_trained(run, self.study.train_steps)
      for mixture, argv in spec_lib.eval_argvs(self.study, run, self.python, self.search_paths):
        self.progress.set_fraction(run.key, TRAIN_SHARE)
        self.phase(index, run, f"eval_{mixture}", argv)
    except RunFailed as e:
      self.say(f"{self.progress.prefix(index, run.key)} FAILED: {e}")
      return str(e)
    files.write_json(layout.done_json(run.run_dir), {"arm": run.arm.name, "seed": run.seed, "time": time.time()})
    self.progress.set_fraction(run.key, 1.0)
    self.say(f"{self.progress.prefix(index, run.key)} done: {run.run_dir}")
    return None

  def phase(self, index: int, run: spec_lib.ArmRun, phase: str, argv: List[str]) -> None:
    """Runs one command of a run, streaming its stdout with the run's prefix; stderr goes to the log only."""
    log = local_log_path(run, phase)
    self.say(f"{self.progress.prefix(index, run.key)} {phase}: {' '.join(argv[1:])}")
    with open(log, "w") as stdout_log, open(log + ".stderr", "w") as stderr_log:
      proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr_log, text=True, env=self.env,
                              start_new_session=True)  # Ctrl-C reaches the study, which stops them cleanly
      with self.print_lock:
        self.active[run.key] = proc
      try:
        for line in proc.stdout:
          stdout_log.write(line)
          self.progress.observe(run.key, line)
          self.say(f"{self.progress.prefix(index, run.key)} {line.rstrip()}")
        returncode = proc.wait()
      finally:
        with self.print_lock:
          self.active.pop(run.key, None)
        if proc.poll() is None:  # interrupted while it ran: let it save and stop
          self.stopping = True
          _terminate([proc])
    if self.stopping:
      raise RunFailed(f"{phase} stopped")
    if returncode != 0:
      raise RunFailed(f"{phase} exited with status {returncode}; its output is in {log} and {log}.stderr:\n"
                      + _tail(log + ".stderr", FAILURE_TAIL_LINES))


def check_trained(run: spec_lib.ArmRun, train_steps: int) -> None:
  """Training exits 0 also when preempted (SIGTERM) before its last step; such a run is not finished."""
  records = files.read_train_metrics(run.run_dir)
  last = int(records[-1].get("step", 0)) if records else 0
  if last < train_steps:
    raise RunFailed(f"training stopped at step {last} of {train_steps} (preempted?); run the study again to resume")


def _terminate(procs: Sequence[subprocess.Popen]) -> None:
  """SIGTERM to each running command (training saves a checkpoint on it), SIGKILL after the grace period."""
  for proc in procs:
    if proc.poll() is None:
      proc.send_signal(signal.SIGTERM)
  deadline = time.monotonic() + TERMINATE_GRACE_S
  for proc in procs:
    try:
      proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()


def _tail(path: str, lines: int) -> str:
  try:
    with open(path) as f:
      return "".join(f.readlines()[-lines:])
  except OSError:
    return ""


class _sigterm_as_interrupt:
  """SIGTERM ends the study like Ctrl-C (main thread only; elsewhere a no-op)."""

  def __enter__(self):
    self.previous = None
    if threading.current_thread() is threading.main_thread():
      self.previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    return self

  def __exit__(self, *exc):
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)
    return False


def _raise_interrupt(signum, frame):  # noqa: ARG001
  raise KeyboardInterrupt(f"signal {signum}")
