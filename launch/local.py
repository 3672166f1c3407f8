"""The `local` executor: a work unit as N processes on this machine, K CPU devices each, joined by jax.distributed.

Each process gets, in its environment:
  SKIP_T5X_COORDINATOR=127.0.0.1:<free port>, SKIP_T5X_NUM_PROCESSES=N, SKIP_T5X_PROCESS_ID=i
      (read by skip_t5x.parallel.initialize_distributed, which the entry points and launch.probe call)
  JAX_PLATFORMS=cpu, JAX_NUM_CPU_DEVICES=K and XLA_FLAGS with --xla_force_host_platform_device_count=K
and writes stdout and stderr to LOG_DIR/process_<i>.log.

A dead jax.distributed peer makes the others abort only after a long heartbeat timeout, or hang in a
collective. The launcher therefore supervises: as soon as one process exits non-zero (or is killed), it stops
the others (SIGTERM to their process groups, SIGKILL after `grace_s`) and reports which process failed. If one
process finishes cleanly, the rest get `straggler_timeout_s` to finish too.

Restarts (`Local.restart`, launch/restart.py): when a process dies (killed, preempted, a peer lost), the whole
unit is stopped and started again after a back-off, up to `max_restarts` times; a training unit then resumes from
its last checkpoint. Attempt k > 0 logs to LOG_DIR/<name>/<wid>/restart_<k>/.
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Mapping, Sequence

from launch.restart import RestartPolicy

_DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=\d+")


@dataclasses.dataclass(frozen=True)
class Local:
  """Settings of the local executor.

  Attributes:
    num_processes: N processes per work unit.
    devices_per_process: K CPU devices in each.
    log_dir: root of the per-process logs; a work unit logs to LOG_DIR/<name>/<wid>/process_<i>.log.
    timeout_s: stop a work unit that runs longer than this (None: no limit).
    grace_s: time between SIGTERM and SIGKILL when stopping processes.
    straggler_timeout_s: once one process exited cleanly, how long the others may still run.
    poll_interval_s: how often the launcher checks its processes.
    restart: when and how often a failed unit is started again (default: never).
  """

  num_processes: int = 2
  devices_per_process: int = 4
  log_dir: str = "runs/launch_logs"
  timeout_s: float | None = None
  grace_s: float = 5.0
  straggler_timeout_s: float = 120.0
  poll_interval_s: float = 0.2
  restart: RestartPolicy = RestartPolicy()

  def __post_init__(self):
    if not isinstance(self.num_processes, int) or self.num_processes < 1:
      raise ValueError(f"num_processes {self.num_processes!r} must be a positive int")
    if not isinstance(self.devices_per_process, int) or self.devices_per_process < 1:
      raise ValueError(f"devices_per_process {self.devices_per_process!r} must be a positive int")


@dataclasses.dataclass(frozen=True)
class ProcessResult:
  process_id: int
  pid: int
  returncode: int | None  # None: still running when stopped by the launcher
  log_path: str


@dataclasses.dataclass(frozen=True)
class LocalResult:
  """Outcome of one multi-process run. `failed` is the process that brought the run down, if any."""

  ok: bool
  processes: tuple[ProcessResult, ...]
  failed: ProcessResult | None
  message: str
  restarts: int = 0  # how many times the unit was started again before this (last) attempt


def _announce(message: str) -> None:
  print(message, flush=True)


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on right now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(base: Mapping[str, str], *, process_id: int, num_processes: int, devices_per_process: int,
                coordinator: str, extra: Mapping[str, str] = ()) -> dict[str, str]:
  """The environment of local process `process_id` (the inherited device count flag is replaced)."""
  env = dict(base)
  env.update(dict(extra))
  xla_flags = _DEVICE_COUNT_FLAG.sub("", env.get("XLA_FLAGS", "")).split()
  xla_flags.append(f"--xla_force_host_platform_device_count={devices_per_process}")
  env.update(
      XLA_FLAGS=" ".join(xla_flags),
      JAX_PLATFORMS="cpu",
      JAX_NUM_CPU_DEVICES=str(devices_per_process),
      SKIP_T5X_COORDINATOR=coordinator,
      SKIP_T5X_NUM_PROCESSES=str(num_processes),
      SKIP_T5X_PROCESS_ID=str(process_id),
  )
  return env


def _describe_exit(returncode: int) -> str:
  if returncode < 0:
    try:
      return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
      return f"was killed by signal {-returncode}"
  return f"exited with code {returncode}"


def _log_tail(path: str, lines: int = 15) -> str:
  try:
    with open(path, "r", errors="replace") as f:
      return "".join(f.readlines()[-lines:])
  except OSError:
    return ""


def _stop(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
  """SIGTERM every live process group, then SIGKILL what is left after grace_s."""
  live = [p for p in procs if p.poll() is None]
  for p in live:
    try:
      os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
      pass
  deadline = time.monotonic() + grace_s
  for p in live:
    try:
      p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      pass
  for p in live:
    if p.poll() is None:
      try:
        os.killpg(p.pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
      p.wait()


def run_processes(argv: Sequence[str], cfg: Local, log_dir: str, env: Mapping[str, str] | None = None,
                  announce=_announce, cwd: str | None = None) -> LocalResult:
  """Runs `argv` as cfg.num_processes coordinated processes (in `cwd`) and supervises them until all end."""
  if not argv:
    raise ValueError("no command to run")
  os.makedirs(log_dir, exist_ok=True)
  coordinator = f"127.0.0.1:{free_port()}"
  base = dict(os.environ)
  procs: list[subprocess.Popen] = []
  logs: list[str] = []
  start = time.monotonic()

  def result(ok: bool, failed_index: int | None, message: str) -> LocalResult:
    processes = tuple(ProcessResult(i, p.pid, p.returncode, logs[i]) for i, p in enumerate(procs))
    return LocalResult(ok, processes, processes[failed_index] if failed_index is not None else None, message)

  try:
    for i in range(cfg.num_processes):
      log_path = os.path.join(log_dir, f"process_{i}.log")
      logs.append(log_path)
      with open(log_path, "wb") as log_file:
        procs.append(subprocess.Popen(
            list(argv), stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=process_env(base, process_id=i, num_processes=cfg.num_processes,
                            devices_per_process=cfg.devices_per_process, coordinator=coordinator,
                            extra=env or {}),
            cwd=cwd, start_new_session=True))  # own process group: stopping it also stops its children
      announce(f"launch: process {i} pid={procs[-1].pid} log={log_path}")
    first_clean_exit: float | None = None
    while True:
      codes = [p.poll() for p in procs]
      for i, code in enumerate(codes):
        if code not in (None, 0):
          _stop(procs, cfg.grace_s)
          message = (f"process {i} (pid {procs[i].pid}) {_describe_exit(code)}; stopped the other "
                     f"{cfg.num_processes - 1} process(es). Log {logs[i]}:\n{_log_tail(logs[i])}")
          return result(False, i, message)
      if all(code == 0 for code in codes):
        return result(True, None, f"all {cfg.num_processes} processes exited cleanly "
                                  f"in {time.monotonic() - start:.1f} s")
      now = time.monotonic()
      if first_clean_exit is None and 0 in codes:
        first_clean_exit = now
      if first_clean_exit is not None and now - first_clean_exit > cfg.straggler_timeout_s:
        stuck = [i for i, c in enumerate(codes) if c is None]
        _stop(procs, cfg.grace_s)
        return result(False, stuck[0], f"process(es) {stuck} still running {cfg.straggler_timeout_s:.0f} s "
                                       f"after another exited cleanly; stopped them. Log {logs[stuck[0]]}:\n"
                                       f"{_log_tail(logs[stuck[0]])}")
      if cfg.timeout_s is not None and now - start > cfg.timeout_s:
        _stop(procs, cfg.grace_s)
        return result(False, None, f"timed out after {cfg.timeout_s:.0f} s; stopped all processes")
      time.sleep(cfg.poll_interval_s)
  finally:
    # Also on KeyboardInterrupt / SystemExit: never leave workers behind.
    _stop(procs, cfg.grace_s)


def run_with_restarts(argv: Sequence[str], cfg: Local, log_dir: str, env: Mapping[str, str] | None = None,
                      announce=_announce, cwd: str | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> LocalResult:
  """`run_processes`, started again (all processes) after a failure as `cfg.restart` allows."""
  restarts = 0
  while True:
    attempt_dir = log_dir if restarts == 0 else os.path.join(log_dir, f"restart_{restarts}")
    result = dataclasses.replace(run_processes(argv, cfg, attempt_dir, env=env, announce=announce, cwd=cwd),
                                 restarts=restarts)
    returncode = result.failed.returncode if result.failed is not None else None
    if result.ok or result.failed is None or not cfg.restart.should_restart(returncode, restarts):
      return result  # success, the unit's own time limit, a refused command, or no restarts left
    restarts += 1
    delay = cfg.restart.delay_s(restarts)
    announce(f"launch: {result.message.splitlines()[0]}")
    announce(f"launch: restart {restarts}/{cfg.restart.max_restarts} of the whole unit in {delay:g} s "
             "(a training run resumes from its last checkpoint)")
    sleep(delay)


def run_work_unit(unit, cfg: Local, python: str = sys.executable, announce=_announce,
                  cwd: str | None = None) -> LocalResult:
  """Runs one `launch.experiment.WorkUnit` with this executor (restarting it as `cfg.restart` allows)."""
  log_dir = os.path.join(cfg.log_dir, unit.experiment_name, str(unit.wid))
  announce(f"launch: work unit {unit.wid} [{unit.label}] model_dir={unit.model_dir}")
  return run_with_restarts(unit.argv(python), cfg, log_dir, env=unit.env, announce=announce, cwd=cwd)
