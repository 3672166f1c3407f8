"""The tpu_vm executor: dry-run text (golden), the commands' structure, and how a real run sequences them."""
import os
import shlex
import subprocess

import pytest

from launch import Experiment, TpuVm, product
from launch import tpu_vm
from launch.__main__ import main

EXAMPLE = "launch/experiments/skip_ratio_sweep.py"
GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "skip_ratio_sweep_dry_run.txt")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRY_RUN_ARGS = ["tpu_vm", EXAMPLE, "--project=my-project", "--set",
                "model_dir=gs://skip-bucket/{name}/{wid}_{overrides}"]


def _dry_run(capsys, monkeypatch):
  monkeypatch.chdir(REPO)
  assert main(DRY_RUN_ARGS) == 0
  return capsys.readouterr().out


def _remote_argv(line: str) -> list[str]:
  """The argv a worker runs for a printed `[run] gcloud ... --command=...` line (two shell parses)."""
  words = shlex.split(line.split("] ", 1)[1])
  command = [w for w in words if w.startswith("--command=")]
  assert len(command) == 1, line
  return shlex.split(command[0][len("--command="):])


def test_dry_run_matches_golden_text(capsys, monkeypatch):
  out = _dry_run(capsys, monkeypatch)
  with open(GOLDEN) as f:
    golden = f.read()
  assert out == golden, (
      f"dry run differs from {GOLDEN}; if the change is intended regenerate it with\n"
      f"  python -m launch {shlex.join(DRY_RUN_ARGS)} > {os.path.relpath(GOLDEN, REPO)}")


def test_dry_run_has_one_model_dir_and_the_right_overrides_per_work_unit(capsys, monkeypatch):
  out = _dry_run(capsys, monkeypatch)
  runs = [line for line in out.splitlines() if line.startswith("[run] ")]
  expected = product(SKIP_RATIO=[0.25, 0.5, 0.75], ROUTED=["layer", "ffn"])
  assert len(runs) == len(expected) == 6
  model_dirs = []
  for wid, (line, point) in enumerate(zip(runs, expected), start=1):
    argv = _remote_argv(line)
    assert argv[:2] == ["cd", "skip_t5x"] and argv[2] == "&&"
    flags = argv[argv.index("skip_t5x.train") + 1:]
    model_dir = [f for f in flags if f.startswith("--model_dir=")]
    assert model_dir == [f"--model_dir=gs://skip-bucket/skip-ratio-sweep/{wid}_SKIP_RATIO={point['SKIP_RATIO']},"
                         f"ROUTED={point['ROUTED']}"]
    model_dirs += model_dir
    assert f"--gin.SKIP_RATIO={point['SKIP_RATIO']}" in flags
    assert f'--gin.ROUTED="{point["ROUTED"]}"' in flags  # a gin string literal after the remote shell
    assert "--gin.TRAIN_STEPS=100000" in flags
    gin_files = [f[len("--gin_file="):] for f in flags if f.startswith("--gin_file=")]
    assert gin_files == ["gin/runs/pretrain.gin", "gin/models/skip_1p7b.gin"]
    assert all(os.path.isfile(os.path.join(REPO, f)) for f in gin_files)  # the example stays runnable
    assert "SKIP_T5X_NUM_PROCESSES=64" in argv  # 256 v5e chips = 64 TPU VM hosts, all of them run
    assert f"skip-ratio-sweep-{wid}" in shlex.split(line.split("] ", 1)[1])  # its own TPU
    assert "--worker=all" in line and "--node=all" in line
  assert len(set(model_dirs)) == 6
  assert out.count("[create] ") == 6 and out.count("[install] ") == 6


def _sweep(**changes):
  fields = dict(name="ms", gin_files=["gin/runs/x.gin"], model_dir="gs://b/{wid}", topology="v4:4x4x8",
                sweep=product(SKIP_RATIO=[0.25, 0.5]))
  fields.update(changes)
  return Experiment(**fields)


def test_multislice_queues_all_slices_and_runs_on_every_host():
  package, tpus = tpu_vm.plan(_sweep(num_slices=2), TpuVm(zone="z"))
  steps = {s.phase: s.argv for s in tpus[0].steps}
  assert "--node-count=2" in steps["create"] and "--node-prefix=ms-1" in steps["create"]
  assert "--type=v4" in steps["create"] and "--topology=4x4x8" in steps["create"]
  assert "--batch-size=64" in steps["run"]  # 2 slices x 32 hosts must all start together
  assert "SKIP_T5X_NUM_PROCESSES=64" in shlex.split(steps["run"][-1][len("--command="):])
  with pytest.raises(ValueError, match="num_slices=2 needs provisioning='queued'"):
    tpu_vm.plan(_sweep(num_slices=2), TpuVm(zone="z", provisioning="direct"))


def test_tpu_name_without_wid_runs_work_units_one_after_the_other():
  _, tpus = tpu_vm.plan(_sweep(), TpuVm(zone="z", provisioning="direct", tpu_name="{name}-shared"))
  assert [t.tpu_name for t in tpus] == ["ms-shared"]
  phases = [s.phase for s in tpus[0].steps]
  assert phases == ["create", "copy", "install", "run", "run", "delete"]
  assert "--version=tpu-ubuntu2204-base" in tpus[0].steps[0].argv


def test_bad_tpu_settings_fail_before_any_command():
  with pytest.raises(ValueError, match=r"TPU name 'ms_1'"):
    tpu_vm.plan(_sweep(), TpuVm(zone="z", tpu_name="ms_{wid}"))
  with pytest.raises(ValueError, match="has no topology"):
    tpu_vm.plan(_sweep(topology=None), TpuVm(zone="z"))
  with pytest.raises(ValueError, match=r"work unit id\(s\) \[7\]"):
    tpu_vm.plan(_sweep(), TpuVm(zone="z"), only=[7])
  with pytest.raises(ValueError, match="provisioning 'fast'"):
    TpuVm(zone="z", provisioning="fast")


class RecordingGcloud:
  """Stands in for gcloud (not installed here): records argv, answers `describe` with a queue of states."""

  def __init__(self, states=("WAITING_FOR_RESOURCES", "ACTIVE"), fail_phase=None):
    self.calls, self.states, self.fail_phase = [], list(states), fail_phase

  def __call__(self, argv):
    self.calls.append(list(argv))
    if "describe" in argv:
      return subprocess.CompletedProcess(argv, 0, self.states.pop(0) + "\n")
    failed = self.fail_phase is not None and self.fail_phase in " ".join(argv)
    return subprocess.CompletedProcess(argv, 1 if failed else 0, "")


def test_execute_waits_for_active_then_installs_and_runs(capsys):
  gcloud = RecordingGcloud()
  cfg = TpuVm(zone="z", poll_interval_s=0.0)
  assert tpu_vm.execute(_sweep(), cfg, only=[2], runner=gcloud) == 0
  verbs = [c[0] if c[0] == "tar" else c[4] for c in gcloud.calls]
  assert verbs == ["tar", "create", "describe", "describe", "scp", "ssh", "ssh"]
  assert "--gin.SKIP_RATIO=0.5" in gcloud.calls[-1][-1]
  assert not any("delete" in c for c in gcloud.calls)


def test_execute_stops_a_tpu_at_the_first_failure_and_deletes_when_asked(capsys):
  gcloud = RecordingGcloud(states=["ACTIVE"], fail_phase="pip install")
  cfg = TpuVm(zone="z", poll_interval_s=0.0, delete_when_done=True)
  assert tpu_vm.execute(_sweep(), cfg, only=[1], runner=gcloud) == 1
  verbs = [c[0] if c[0] == "tar" else c[4] for c in gcloud.calls]
  assert verbs == ["tar", "create", "describe", "scp", "ssh", "delete"]  # no run after the failed install
  assert "TPU ms-1 failed: install failed" in capsys.readouterr().err


def test_failed_queued_resource_is_reported():
  gcloud = RecordingGcloud(states=["WAITING_FOR_RESOURCES", "FAILED"])
  assert tpu_vm.execute(_sweep(), TpuVm(zone="z", poll_interval_s=0.0), only=[1], runner=gcloud) == 1
  assert sum("describe" in c for c in gcloud.calls) == 2
