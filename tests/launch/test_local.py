"""The local executor: real processes joined by jax.distributed on 127.0.0.1, and failure handling."""
import os
import re
import signal
import subprocess
import sys
import time

from launch import Local, run_processes
from launch.local import process_env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _wait_for(predicate, timeout_s, what):
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if predicate():
      return
    time.sleep(0.2)
  raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _read(path):
  try:
    with open(path) as f:
      return f.read()
  except FileNotFoundError:
    return ""


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  return True


def test_process_env_sets_devices_and_coordinates():
  base = {"XLA_FLAGS": "--xla_foo=1 --xla_force_host_platform_device_count=8", "PATH": "/bin"}
  env = process_env(base, process_id=1, num_processes=2, devices_per_process=4, coordinator="127.0.0.1:1234",
                    extra={"TFDS_DATA_DIR": "/d"})
  assert env["XLA_FLAGS"] == "--xla_foo=1 --xla_force_host_platform_device_count=4"
  assert (env["JAX_NUM_CPU_DEVICES"], env["JAX_PLATFORMS"]) == ("4", "cpu")
  assert (env["SKIP_T5X_COORDINATOR"], env["SKIP_T5X_NUM_PROCESSES"], env["SKIP_T5X_PROCESS_ID"]) == (
      "127.0.0.1:1234", "2", "1")
  assert env["TFDS_DATA_DIR"] == "/d" and env["PATH"] == "/bin"


def test_a_failing_process_stops_the_others_and_is_named(tmp_path):
  # Process 1 fails at once; process 0 would sleep for 10 minutes.
  program = ("import os, sys, time\n"
             "if os.environ['SKIP_T5X_PROCESS_ID'] == '1':\n"
             "    print('bad input'); sys.exit(3)\n"
             "time.sleep(600)\n")
  start = time.monotonic()
  result = run_processes([sys.executable, "-c", program], Local(num_processes=2, grace_s=2.0), str(tmp_path),
                         announce=lambda _: None)
  assert time.monotonic() - start < 10
  assert not result.ok and result.failed.process_id == 1 and result.failed.returncode == 3
  assert result.processes[0].returncode == -signal.SIGTERM  # stopped by the launcher
  assert "process 1" in result.message and "exited with code 3" in result.message and "bad input" in result.message


def test_killing_one_jax_distributed_worker_stops_the_launch_within_60s(tmp_path):
  """Two real jax.distributed processes (2 CPU devices each) all-reduce in a loop; SIGKILL one of them."""
  log_dir = tmp_path / "logs"
  launcher = subprocess.Popen(
      [sys.executable, "-m", "launch", "local", "--num_processes=2", "--devices_per_process=2",
       f"--log_dir={log_dir}", "--grace_s=3", "--", "python", "-m", "launch.probe", "--steps=100000",
       "--sleep_s=0.05"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
  try:
    logs = [log_dir / f"process_{i}.log" for i in range(2)]
    # Both processes joined one cluster of 4 devices: 1 + 2 + 3 + 4 = 10.
    _wait_for(lambda: all("step 2 ok (sum 10)" in _read(p) for p in logs), 90, "both workers to all-reduce")
    pids = {}
    for line in iter(launcher.stdout.readline, ""):
      match = re.match(r"launch: process (\d) pid=(\d+)", line)
      if match:
        pids[int(match.group(1))] = int(match.group(2))
      if len(pids) == 2:
        break
    os.kill(pids[1], signal.SIGKILL)
    killed_at = time.monotonic()
    rc = launcher.wait(timeout=60)
    elapsed = time.monotonic() - killed_at
    stderr = launcher.stderr.read()
  finally:
    if launcher.poll() is None:
      os.killpg(launcher.pid, signal.SIGKILL)
      launcher.wait()
  assert rc != 0
  assert elapsed < 60
  assert f"process 1 (pid {pids[1]}) was killed by SIGKILL" in stderr
  assert not _alive(pids[0]), "the surviving worker was left running"
