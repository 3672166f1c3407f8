"""The `tpu_vm` executor: Cloud TPU VM slices driven by gcloud.

For each TPU (one per work unit by default) the plan is:
  create   queue the slice (queued resources; required for Multislice) or create it directly
  wait     poll until the queued resource is ACTIVE
  copy     ship the source tarball to every worker (--worker=all)
  install  unpack it and `pip install -e .[tpu]` on every worker
  run      the same train command on every worker of every slice at once, with SKIP_T5X_NUM_PROCESSES set to
           the number of TPU VM hosts; skip_t5x.parallel.initialize_distributed then calls
           jax.distributed.initialize, which finds the coordinator and its process id on Cloud TPU by itself
  delete   only with delete_when_done (otherwise printed for reference)

Nothing runs unless asked: `plan()` builds the commands, `format_plan()` prints them (the dry run), and
`execute()` runs them with subprocess, one thread per TPU (launch/tpu_vm_execute.py). With `restart`
(launch/restart.py), a failed run is retried on a re-created TPU: delete, create, wait, copy, install, run again
(the dry run prints these steps too).
"""
from __future__ import annotations

import dataclasses
import shlex
from typing import Sequence

from launch.experiment import Experiment, WorkUnit, render_template
from launch.restart import RestartPolicy
from launch.tpus import Topology

# Characters a POSIX shell reads literally; everything else is backslash-escaped on remote command lines.
_SHELL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-")
PHASES = ("package", "create", "wait", "copy", "install", "run", "delete")


def remote_quote(token: str) -> str:
  """Quote one word for the remote shell with backslashes (keeps the outer --command='...' readable)."""
  if "\n" in token:
    raise ValueError(f"command-line word {token!r} contains a newline")
  if not token:
    return "''"
  return "".join(c if c in _SHELL_SAFE else "\\" + c for c in token)


def remote_command(words: Sequence[str]) -> str:
  return " ".join(remote_quote(w) for w in words)


@dataclasses.dataclass(frozen=True)
class Step:
  """One command of the plan. `poll_until` makes it a wait: rerun until stdout is that value."""

  phase: str
  argv: tuple[str, ...]
  poll_until: str | None = None

  def display(self) -> str:
    return shlex.join(self.argv)


@dataclasses.dataclass(frozen=True)
class TpuPlan:
  """The commands for one TPU and the work units it runs one after the other."""

  tpu_name: str
  work_units: tuple[WorkUnit, ...]
  steps: tuple[Step, ...]


@dataclasses.dataclass(frozen=True)
class TpuVm:
  """Settings of the tpu_vm executor (where the experiment's topology gets created).

  Attributes:
    zone: e.g. 'us-west4-a'.
    project: GCP project; None uses gcloud's configured project.
    provisioning: 'queued' (queued resources: waits for capacity; needed for num_slices > 1) or 'direct'.
    spot: ask for Spot capacity.
    runtime_version: TPU VM image; None picks the generation's default (launch.tpus).
    tpu_name: template of the TPU name per work unit (same fields as model_dir). Without {wid} (or a
      swept field) several work units share one TPU and run on it one after the other.
    source_dir: local directory shipped to the workers (the repository root).
    workdir: directory under the workers' home where the source is unpacked.
    python: interpreter on the workers.
    pip_extras: extras installed on the workers ('tpu' brings jax[tpu] and libtpu).
    delete_when_done: delete each TPU after its work units finish (on success or failure).
    poll_interval_s, wait_timeout_s: how often and how long to wait for a queued resource to be ACTIVE.
    restart: when a run fails (preempted, a worker lost) or the queued resource fails while waiting: how often
      to re-create the TPU and run the work unit again (default: never).
  """

  zone: str
  project: str | None = None
  provisioning: str = "queued"
  spot: bool = False
  runtime_version: str | None = None
  tpu_name: str = "{name}-{wid}"
  source_dir: str = "."
  workdir: str = "skip_t5x"
  python: str = "python3"
  pip_extras: str = "tpu"
  delete_when_done: bool = False
  poll_interval_s: float = 60.0
  wait_timeout_s: float = 24 * 3600.0
  restart: RestartPolicy = RestartPolicy()

  def __post_init__(self):
    if not self.zone:
      raise ValueError("tpu_vm executor needs a zone (e.g. zone='us-west4-a')")
    if self.provisioning not in ("queued", "direct"):
      raise ValueError(f"provisioning {self.provisioning!r} must be 'queued' or 'direct'")
    if self.workdir.startswith(("/", "~")) or ".." in self.workdir.split("/"):
      raise ValueError(f"workdir {self.workdir!r} must be relative to the workers' home directory")


def _scope_flags(cfg: TpuVm) -> list[str]:
  flags = [f"--zone={cfg.zone}"]
  if cfg.project:
    flags.append(f"--project={cfg.project}")
  return flags


def archive_path(experiment: Experiment) -> str:
  return f"/tmp/{experiment.name}-src.tar.gz"


def package_step(experiment: Experiment, cfg: TpuVm) -> Step:
  """Tar the source tree once per experiment (no venv, git history or local runs)."""
  return Step("package", ("tar", "-czf", archive_path(experiment), "--exclude=./.venv", "--exclude=./.git",
                          "--exclude=./runs", "--exclude=__pycache__", "-C", cfg.source_dir, "."))


def tpu_steps(experiment: Experiment, cfg: TpuVm, tpu_name: str, units: Sequence[WorkUnit]) -> list[Step]:
  """create, wait, copy, install, run (per work unit), delete for one TPU."""
  if experiment.topology is None:
    raise ValueError(f"experiment {experiment.name!r} has no topology (e.g. topology='v5e:16x16'); "
                     "the tpu_vm executor needs one")
  topology = Topology.parse(experiment.topology)
  runtime = cfg.runtime_version or topology.default_runtime_version
  scope = _scope_flags(cfg)
  multislice = experiment.num_slices > 1
  if multislice and cfg.provisioning != "queued":
    raise ValueError(f"num_slices={experiment.num_slices} needs provisioning='queued' "
                     f"(got {cfg.provisioning!r}): Multislice is only available through queued resources")
  spot = ["--spot"] if cfg.spot else []
  qr = ["gcloud", "compute", "tpus", "queued-resources"]
  workers = topology.num_hosts * experiment.num_slices
  steps: list[Step] = []
  if cfg.provisioning == "queued":
    nodes = ([f"--node-count={experiment.num_slices}", f"--node-prefix={tpu_name}"] if multislice
             else [f"--node-id={tpu_name}"])
    steps.append(Step("create", (*qr, "create", tpu_name, *nodes, *topology.gcloud_shape_flags,
                                 f"--runtime-version={runtime}", *spot, *scope)))
    steps.append(Step("wait", (*qr, "describe", tpu_name, "--format=value(state.state)", *scope),
                      poll_until="ACTIVE"))
    # Every worker of every slice at once: the batch size must cover all of them or the run would start
    # on the first batch only and wait forever for the rest.
    copy = (*qr, "scp", archive_path(experiment), f"{tpu_name}:/tmp/", "--node=all", "--worker=all",
            f"--batch-size={workers}", *scope)
    ssh = (*qr, "ssh", tpu_name, "--node=all", "--worker=all", f"--batch-size={workers}", *scope)
    delete = Step("delete", (*qr, "delete", tpu_name, "--force", "--quiet", *scope))
  else:
    vm = ["gcloud", "compute", "tpus", "tpu-vm"]
    steps.append(Step("create", (*vm, "create", tpu_name, *topology.gcloud_shape_flags,
                                 f"--version={runtime}", *spot, *scope)))
    copy = (*vm, "scp", archive_path(experiment), f"{tpu_name}:/tmp/", "--worker=all", *scope)
    ssh = (*vm, "ssh", tpu_name, "--worker=all", *scope)
    delete = Step("delete", (*vm, "delete", tpu_name, "--quiet", *scope))
  steps.append(Step("copy", copy))
  archive = archive_path(experiment)
  install = (f"mkdir -p {remote_quote(cfg.workdir)} && tar -xzf {remote_quote(archive)} -C "
             f"{remote_quote(cfg.workdir)} && cd {remote_quote(cfg.workdir)} && "
             f"{remote_command([cfg.python, '-m', 'pip', 'install', '-q', '-e', f'.[{cfg.pip_extras}]'])}")
  steps.append(Step("install", (*ssh, f"--command={install}")))
  for unit in units:
    steps.append(Step("run", (*ssh, f"--command={run_command(unit, cfg, num_processes=workers)}")))
  steps.append(delete)
  return steps


def run_command(unit: WorkUnit, cfg: TpuVm, num_processes: int) -> str:
  """The shell command every worker runs for a work unit (`num_processes`: TPU VM hosts in all slices)."""
  env = {**unit.env, "SKIP_T5X_NUM_PROCESSES": str(num_processes)}
  env_words = [f"{key}={value}" for key, value in sorted(env.items())]
  words = (["env", *env_words] if env_words else []) + unit.argv(cfg.python)
  return f"cd {remote_quote(cfg.workdir)} && {remote_command(words)}"


def plan(experiment: Experiment, cfg: TpuVm, only: Sequence[int] | None = None) -> tuple[Step, list[TpuPlan]]:
  """The package step and, per TPU, its steps. `only` restricts to some work unit ids."""
  units = experiment.work_units()
  if only:
    known = {u.wid for u in units}
    missing = sorted(set(only) - known)
    if missing:
      raise ValueError(f"work unit id(s) {missing} not in experiment {experiment.name!r} "
                       f"(ids are {min(known)}..{max(known)})")
    units = [u for u in units if u.wid in set(only)]
  groups: dict[str, list[WorkUnit]] = {}
  for unit in units:
    values = experiment.template_values(unit.wid, unit.sweep_point, unit.overrides)
    name = render_template(cfg.tpu_name, "tpu_name", values)
    if not (1 <= len(name) <= 61) or not name[0].isalpha() or not all(
            c.islower() or c.isdigit() or c == "-" for c in name) or name.endswith("-"):
      raise ValueError(f"TPU name {name!r} (from template {cfg.tpu_name!r}) must be lowercase letters, "
                       "digits and hyphens, start with a letter and be at most 61 characters")
    groups.setdefault(name, []).append(unit)
  tpus = [TpuPlan(name, tuple(us), tuple(tpu_steps(experiment, cfg, name, us))) for name, us in groups.items()]
  return package_step(experiment, cfg), tpus


def format_plan(experiment: Experiment, cfg: TpuVm, only: Sequence[int] | None = None) -> str:
  """The dry-run text: every command, grouped per TPU and work unit."""
  package, tpus = plan(experiment, cfg, only)
  n_units = sum(len(t.work_units) for t in tpus)
  lines = [
      f"# experiment {experiment.name}: {n_units} work unit(s) on {len(tpus)} TPU(s), "
      f"{experiment.topology} x {experiment.num_slices} slice(s), {cfg.provisioning} provisioning",
      f"[{package.phase}] {package.display()}",
  ]
  for tpu in tpus:
    lines.append("")
    lines.append(f"# TPU {tpu.tpu_name}: work unit(s) {', '.join(str(u.wid) for u in tpu.work_units)}")
    runs = iter(tpu.work_units)
    for step in tpu.steps:
      if step.phase == "run":
        unit = next(runs)
        lines.append(f"# work unit {unit.wid} [{unit.label}] model_dir={unit.model_dir}")
      suffix = f"   # repeat until it prints {step.poll_until}" if step.poll_until else ""
      prefix = "[delete] (with --delete_when_done) " if step.phase == "delete" and not cfg.delete_when_done \
          else f"[{step.phase}] "
      lines.append(prefix + step.display() + suffix)
    if cfg.restart.max_restarts:
      lines.append(f"# if a run fails (preempted, a worker lost) or the queued resource fails: "
                   f"{cfg.restart.describe()}; each restart runs")
      for step in recovery_steps(tpu):
        suffix = f"   # repeat until it prints {step.poll_until}" if step.poll_until else ""
        lines.append(f"[restart:{step.phase}] {step.display()}{suffix}")
      lines.append("[restart:run] the failed work unit's [run] command again (it resumes from its last checkpoint)")
  return "\n".join(lines) + "\n"


def recovery_steps(tpu: TpuPlan) -> list[Step]:
  """What a restart runs before re-running a failed work unit: delete the TPU (or queued resource), then create,
  wait, copy and install again."""
  delete = [step for step in tpu.steps if step.phase == "delete"]
  setup = [step for step in tpu.steps if step.phase in ("create", "wait", "copy", "install")]
  return delete + setup


def execute(experiment: Experiment, cfg: TpuVm, only: Sequence[int] | None = None, runner=None) -> int:
  """Runs the plan for real (launch/tpu_vm_execute.py); returns 0 if every TPU succeeded."""
  from launch import tpu_vm_execute  # pylint: disable=import-outside-toplevel  (it builds on this module)

  return tpu_vm_execute.execute(experiment, cfg, only, runner)
