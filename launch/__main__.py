"""Command line: python -m launch {list,tpu_vm,local} ...

  python -m launch list launch/experiments/skip_ratio_sweep.py
  python -m launch tpu_vm launch/experiments/skip_ratio_sweep.py            # dry run: prints every command
  python -m launch tpu_vm launch/experiments/skip_ratio_sweep.py --run      # really creates TPUs and trains
  python -m launch local launch/experiments/tiny_local.py --num_processes=2 --devices_per_process=4
  python -m launch local --num_processes=2 -- python -m launch.probe --steps=3
  python -m launch local launch/experiments/tiny_local.py --max_restarts=3 --restart_backoff_s=10

An experiment file is a Python file defining EXPERIMENT (a launch.Experiment) and optionally TPU_VM
(a launch.TpuVm) and LOCAL (a launch.Local) with executor defaults; flags override them.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import os
import signal
import sys

from launch import local as local_executor
from launch import tpu_vm
from launch.experiment import Experiment


def load_experiment_file(path: str):
  """Imports an experiment file and returns (EXPERIMENT, TPU_VM or None, LOCAL or None)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"experiment file {path!r} does not exist")
  spec = importlib.util.spec_from_file_location(f"launch_experiment_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  experiment = getattr(module, "EXPERIMENT", None)
  if not isinstance(experiment, Experiment):
    raise ValueError(f"experiment file {path!r} must define EXPERIMENT = launch.Experiment(...)")
  return experiment, getattr(module, "TPU_VM", None), getattr(module, "LOCAL", None)


def _parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_settings(experiment: Experiment, settings: list[str]) -> Experiment:
  """--set FIELD=VALUE, --set overrides.NAME=VALUE, --set env.NAME=VALUE (VALUE is a Python literal or text)."""
  changes: dict = {}
  overrides = dict(experiment.overrides)
  env = dict(experiment.env)
  fields = {f.name for f in dataclasses.fields(Experiment)} - {"overrides", "env", "sweep"}
  for setting in settings:
    key, sep, value = setting.partition("=")
    if not sep:
      raise ValueError(f"--set {setting!r} is not FIELD=VALUE")
    if key.startswith("overrides."):
      overrides[key[len("overrides."):]] = _parse_value(value)
    elif key.startswith("env."):
      env[key[len("env."):]] = value
    elif key in ("gin_files", "extra_args"):
      changes[key] = tuple(value.split(",")) if value else ()
    elif key == "num_slices":
      changes[key] = int(value)
    elif key in fields:
      changes[key] = value
    else:
      raise ValueError(f"--set {setting!r}: unknown field {key!r}; use one of {sorted(fields)}, "
                       "overrides.NAME or env.NAME")
  return experiment.replace(overrides=overrides, env=env, **changes)


def _only(text: str | None) -> list[int] | None:
  if not text:
    return None
  try:
    return [int(x) for x in text.split(",")]
  except ValueError:
    raise ValueError(f"--only {text!r} must be comma-separated work unit ids, e.g. 1,3") from None


def _with_restart_flags(cfg, args):
  """--max_restarts / --restart_backoff_s over the executor's RestartPolicy."""
  changes = {k: v for k, v in (("max_restarts", args.max_restarts), ("backoff_s", args.restart_backoff_s))
             if v is not None}
  return dataclasses.replace(cfg, restart=dataclasses.replace(cfg.restart, **changes)) if changes else cfg


def _cmd_list(args) -> int:
  experiment, _, _ = load_experiment_file(args.experiment)
  experiment = apply_settings(experiment, args.set)
  for unit in experiment.work_units():
    print(f"{unit.wid}\t{unit.label}\t{unit.model_dir}")
  return 0


def _cmd_tpu_vm(args) -> int:
  experiment, cfg, _ = load_experiment_file(args.experiment)
  experiment = apply_settings(experiment, args.set)
  if cfg is None and not args.zone:
    raise ValueError(f"{args.experiment} defines no TPU_VM = launch.TpuVm(...); pass at least --zone")
  cfg = cfg or tpu_vm.TpuVm(zone=args.zone)
  changes = {k: v for k, v in (("zone", args.zone), ("project", args.project),
                               ("provisioning", args.provisioning)) if v}
  if args.delete_when_done:
    changes["delete_when_done"] = True
  cfg = _with_restart_flags(dataclasses.replace(cfg, **changes), args)
  only = _only(args.only)
  if not args.run:
    sys.stdout.write(tpu_vm.format_plan(experiment, cfg, only))
    print("# dry run: nothing was executed; pass --run to execute these commands")
    return 0
  return tpu_vm.execute(experiment, cfg, only)


def _cmd_local(args) -> int:
  command = list(args.command)
  cfg = None
  experiment = None
  if args.experiment and command:
    raise ValueError(f"give either an experiment file ({args.experiment!r}) or a command after --, not both")
  if args.experiment:
    experiment, _, cfg = load_experiment_file(args.experiment)
    experiment = apply_settings(experiment, args.set)
  cfg = cfg or local_executor.Local()
  changes = {k: v for k, v in (("num_processes", args.num_processes),
                               ("devices_per_process", args.devices_per_process),
                               ("log_dir", args.log_dir), ("timeout_s", args.timeout_s),
                               ("grace_s", args.grace_s)) if v is not None}
  cfg = _with_restart_flags(dataclasses.replace(cfg, **changes), args)
  if experiment is None:
    if not command:
      raise ValueError("local needs an experiment file or a command after --")
    if command[0] in ("python", "python3"):
      command[0] = sys.executable  # the launcher's own interpreter (and so its virtual environment)
    result = local_executor.run_with_restarts(command, cfg, cfg.log_dir)
    print(result.message, file=sys.stdout if result.ok else sys.stderr, flush=True)
    return 0 if result.ok else 1
  only = _only(args.only)
  for unit in experiment.work_units():
    if only and unit.wid not in only:
      continue
    result = local_executor.run_work_unit(unit, cfg)
    print(f"launch: work unit {unit.wid}: {result.message}", file=sys.stdout if result.ok else sys.stderr,
          flush=True)
    if not result.ok:
      return 1
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m launch", description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  sub = parser.add_subparsers(dest="executor", required=True)

  def common(p):
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change the experiment: model_dir=..., overrides.TRAIN_STEPS=10, env.X=1")
    p.add_argument("--only", help="comma-separated work unit ids to launch")

  def restarts(p):
    p.add_argument("--max_restarts", type=int, help="restart a failed work unit up to N times (it resumes from "
                   "its last checkpoint); exit status 2 (a refused config) is not restarted")
    p.add_argument("--restart_backoff_s", type=float, help="wait before the first restart (doubles each time)")

  p = sub.add_parser("list", help="list the work units of an experiment")
  p.add_argument("experiment")
  common(p)
  p.set_defaults(fn=_cmd_list)

  p = sub.add_parser("tpu_vm", help="Cloud TPU VM slices through gcloud (dry run unless --run)")
  p.add_argument("experiment")
  common(p)
  p.add_argument("--dry_run", action="store_true", default=True, help="print the commands (the default)")
  p.add_argument("--run", action="store_true", help="execute the commands for real")
  p.add_argument("--zone")
  p.add_argument("--project")
  p.add_argument("--provisioning", choices=["queued", "direct"])
  p.add_argument("--delete_when_done", action="store_true")
  restarts(p)
  p.set_defaults(fn=_cmd_tpu_vm)

  p = sub.add_parser("local", help="N local processes x K CPU devices over jax.distributed")
  p.add_argument("experiment", nargs="?", help="experiment file (.py); or give -- COMMAND instead")
  common(p)
  p.add_argument("--num_processes", type=int)
  p.add_argument("--devices_per_process", type=int)
  p.add_argument("--log_dir")
  p.add_argument("--timeout_s", type=float)
  p.add_argument("--grace_s", type=float)
  restarts(p)
  p.set_defaults(fn=_cmd_local)
  return parser


def _raise_system_exit(signum, frame):  # noqa: ARG001
  raise SystemExit(128 + signum)


def main(argv=None) -> int:
  # SIGTERM unwinds like Ctrl-C so that the local executor stops its workers on the way out.
  signal.signal(signal.SIGTERM, _raise_system_exit)
  argv = list(sys.argv[1:] if argv is None else argv)
  command = argv[argv.index("--") + 1:] if "--" in argv else []  # `local ... -- COMMAND ARGS`
  argv = argv[:argv.index("--")] if "--" in argv else argv
  args = build_parser().parse_args(argv)
  args.command = command
  try:
    return args.fn(args)
  except (ValueError, OSError, TypeError) as e:
    print(f"launch: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
