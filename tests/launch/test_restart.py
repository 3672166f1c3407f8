"""Restarting a failed work unit: the policy, the local executor (real processes) and the tpu_vm plan and run.

The slow test kills one of two real jax.distributed training processes mid-run: the launcher restarts the whole
unit, which resumes from its last checkpoint, and every step's loss equals an uninterrupted run's.
"""
import os
import signal
import sys
import threading
import time

import gin
import jax
import numpy as np
import pytest

from launch import Experiment, Local, RestartPolicy, TpuVm, run_with_restarts, run_work_unit, tpu_vm
from launch import tpu_vm_execute
from skip_t5x.training import checkpoints, metrics_logging
from skip_t5x import training
from tests.launch import line_task
from tests.launch.test_multiprocess_train import GIN_FILE, REPO, _parse
from tests.launch.test_tpu_vm import RecordingGcloud, _sweep


def test_policy_backs_off_and_never_restarts_a_refused_command():
  policy = RestartPolicy(max_restarts=3, backoff_s=10, backoff_factor=2, max_backoff_s=30)
  assert [policy.delay_s(k) for k in (1, 2, 3)] == [10, 20, 30]
  assert policy.should_restart(-signal.SIGKILL, 0) and policy.should_restart(1, 2) and policy.should_restart(None, 0)
  assert not policy.should_restart(1, 3)  # no restarts left
  assert not policy.should_restart(2, 0)  # exit status 2: the command refused its input; it would again
  with pytest.raises(ValueError, match="max_restarts -1"):
    RestartPolicy(max_restarts=-1)


# Process 1 kills itself on the first attempt only (a marker file remembers it); then both succeed.
_FLAKY = ("import os, signal, sys, time\n"
          "marker = sys.argv[1]\n"
          "if os.environ['SKIP_T5X_PROCESS_ID'] == '1' and not os.path.exists(marker):\n"
          "    open(marker, 'w').close(); os.kill(os.getpid(), signal.SIGKILL)\n"
          "time.sleep(0.5)\n")


def test_local_restarts_the_whole_unit_after_a_killed_process(tmp_path):
  said, waits = [], []
  cfg = Local(num_processes=2, grace_s=2.0, restart=RestartPolicy(max_restarts=2, backoff_s=7.0))
  result = run_with_restarts([sys.executable, "-c", _FLAKY, str(tmp_path / "marker")], cfg, str(tmp_path / "logs"),
                             announce=said.append, sleep=waits.append)
  assert result.ok and result.restarts == 1, result.message
  assert waits == [7.0]
  assert any("process 1" in s and "was killed by SIGKILL" in s for s in said)
  assert any(s.startswith("launch: restart 1/2 of the whole unit in 7 s") for s in said)
  assert os.path.exists(tmp_path / "logs" / "restart_1" / "process_1.log")  # each attempt logs apart


def test_local_does_not_restart_a_refused_command(tmp_path):
  program = "import sys; print('error: bad config', file=sys.stderr); sys.exit(2)"
  waits = []
  cfg = Local(num_processes=2, grace_s=2.0, restart=RestartPolicy(max_restarts=3, backoff_s=1.0))
  result = run_with_restarts([sys.executable, "-c", program], cfg, str(tmp_path), announce=lambda _: None,
                             sleep=waits.append)
  assert not result.ok and result.restarts == 0 and waits == []
  assert result.failed.returncode == 2


def test_tpu_vm_dry_run_shows_the_restart_steps():
  cfg = TpuVm(zone="z", restart=RestartPolicy(max_restarts=3, backoff_s=60))
  text = tpu_vm.format_plan(_sweep(), cfg, only=[1])
  restart_lines = [line for line in text.splitlines() if line.startswith("[restart:")]
  assert [line.split("]")[0][9:] for line in restart_lines] == ["delete", "create", "wait", "copy", "install", "run"]
  assert "queued-resources delete ms-1 --force --quiet" in restart_lines[0]
  assert "up to 3 restart(s), waiting 60 s x2" in text
  assert "[restart:" not in tpu_vm.format_plan(_sweep(), TpuVm(zone="z"), only=[1])  # no policy, no restarts


class FlakyGcloud(RecordingGcloud):
  """The first run of a work unit fails with `code` (a preempted slice: the ssh command fails)."""

  def __init__(self, code):
    super().__init__(states=["ACTIVE", "ACTIVE"])
    self.code, self.failed_once = code, False

  def __call__(self, argv):
    result = super().__call__(argv)
    if "skip_t5x.train" in " ".join(argv) and not self.failed_once:
      self.failed_once = True
      result.returncode = self.code
    return result


def test_tpu_vm_recreates_the_tpu_and_reruns_a_failed_unit():
  gcloud, waits = FlakyGcloud(code=255), []
  cfg = TpuVm(zone="z", poll_interval_s=0.0, restart=RestartPolicy(max_restarts=1, backoff_s=30))
  assert tpu_vm_execute.execute(_sweep(), cfg, only=[1], runner=gcloud, sleep=waits.append) == 0
  verbs = [c[0] if c[0] == "tar" else c[4] for c in gcloud.calls]
  assert verbs == ["tar", "create", "describe", "scp", "ssh", "ssh",  # set up, run (fails)
                   "delete", "create", "describe", "scp", "ssh", "ssh"]  # re-created, run again
  assert waits == [30]
  refused = FlakyGcloud(code=2)
  assert tpu_vm_execute.execute(_sweep(), cfg, only=[1], runner=refused, sleep=waits.append) == 1
  assert not any("delete" in c for c in refused.calls)  # exit status 2 is not restarted


STEPS = 16


@pytest.mark.slow
def test_a_killed_worker_restarts_the_unit_and_the_losses_match_an_uninterrupted_run(tmp_path):
  corpus = line_task.write_corpus(str(tmp_path / "lines.txt"))
  cache = str(tmp_path / "xla_cache")
  experiment = Experiment(name="restart", gin_files=[GIN_FILE], model_dir=str(tmp_path / "{name}_{wid}"),
                          overrides={"TRAIN_STEPS": STEPS, "CHECKPOINT_PERIOD": 2},
                          env={line_task.CORPUS_ENV: corpus, "JAX_COMPILATION_CACHE_DIR": cache})
  unit = experiment.work_units()[0]
  pids, outcome = {}, {}

  def announce(message):
    if message.startswith("launch: process 1 pid=") and "attempt" not in pids:
      pids["attempt"] = int(message.split("pid=")[1].split()[0])

  def launch():
    cfg = Local(num_processes=2, devices_per_process=4, log_dir=str(tmp_path / "logs"), timeout_s=400, grace_s=3.0,
                restart=RestartPolicy(max_restarts=2, backoff_s=1.0))
    outcome["result"] = run_work_unit(unit, cfg, announce=announce, cwd=REPO)

  thread = threading.Thread(target=launch)
  thread.start()
  try:
    deadline = time.monotonic() + 300
    while not (checkpoints.latest_step(unit.model_dir) and
               any(r["step"] >= 3 for r in metrics_logging.read_metrics(unit.model_dir))):
      assert time.monotonic() < deadline and thread.is_alive(), "the first attempt made no progress"
      time.sleep(0.05)
    os.kill(pids["attempt"], signal.SIGKILL)  # a worker of the first attempt is lost mid-run
    killed_after = max(r["step"] for r in metrics_logging.read_metrics(unit.model_dir))
    line_task.register(corpus)
    _parse(str(tmp_path / "reference"))
    gin.parse_config([f"TRAIN_STEPS = {STEPS}", "CHECKPOINT_PERIOD = 2"])
    assert jax.device_count() == 8
    reference = training.train()  # uninterrupted, here: 1 process x 8 devices, the same global batches
    thread.join(timeout=420)
    assert not thread.is_alive(), "the restarted unit did not finish"
  finally:
    gin.clear_config()
    thread.join(timeout=420)
  result = outcome["result"]
  assert result.ok and result.restarts == 1, result.message
  assert killed_after < STEPS and reference.step == STEPS
  restarted = metrics_logging.read_metrics(unit.model_dir)
  straight = metrics_logging.read_metrics(str(tmp_path / "reference"))
  assert [r["step"] for r in restarted] == [r["step"] for r in straight] == list(range(1, STEPS + 1))
  assert [r["num_tokens"] for r in restarted] == [r["num_tokens"] for r in straight]  # the same rows per step
  np.testing.assert_allclose([r["loss"] for r in restarted], [r["loss"] for r in straight], rtol=2e-5)
