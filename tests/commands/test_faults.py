"""Faults and bad inputs through the real commands (subprocesses with a timeout): one `error:` line and exit status
2, no traceback, no hang, and the model dir left exactly as it was (every file byte-identical).

One tiny trained run (4 steps, checkpoints 2 and 4) is shared by the module; each test works on a copy. Tests that
compile a train step are marked slow; the others fail before anything compiles.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from skip_t5x.training import run_lock
from tests.training import helpers, tiny_task
from tests.training.conftest import shared_dir, subprocess_env

TIMEOUT_S = 240  # per command; a hang fails the test instead of the suite
ROUTER = "(64, 2)"  # the tiny model: d_model 64, two router logits (skip, execute)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  corpus = tiny_task.write_corpus(str(tmp_path_factory.mktemp("corpus") / "tiny.txt"))
  return subprocess_env(corpus, str(shared_dir(tmp_path_factory, "xla_cache")))


@pytest.fixture(scope="module")
def task_gin(tmp_path_factory):
  path = tmp_path_factory.mktemp("gin") / "tiny_task.gin"
  path.write_text("import tests.training.tiny_task\n")
  return str(path)


def train_argv(model_dir: str, task_gin: str, *extra: str, steps: int = 4) -> list:
  bindings = helpers.tiny_run_bindings(model_dir, steps=steps, period=2, async_save=True)[1:]  # MODEL_DIR: flag
  flags = [f"--gin.{b.split(' = ', 1)[0]}={b.split(' = ', 1)[1]}" for b in bindings]
  return [sys.executable, "-m", "skip_t5x.train", "--gin_file=runs/pretrain.gin", "--gin_file=models/skip_tiny.gin",
          f"--gin_file={task_gin}", f"--model_dir={model_dir}", *flags, *extra]


def run(argv: list, env: dict) -> subprocess.CompletedProcess:
  return subprocess.run(argv, cwd=helpers.REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def snapshot(model_dir: str) -> dict:
  """{relative path: sha256} of every file under model_dir ({} when it does not exist)."""
  out = {}
  for root, _, files in os.walk(model_dir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, model_dir)] = hashlib.sha256(f.read()).hexdigest()
  return out


def the_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
  """The one 'error:' line of a refused command (exit 2, no traceback); it must contain every fragment."""
  output = proc.stdout + proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert proc.returncode == 2, output[-3000:]
  assert len(errors) == 1, output[-3000:]
  assert "Traceback" not in output and "Event loop is closed" not in output, output[-3000:]
  for fragment in fragments:
    assert fragment in errors[0], errors[0]
  return errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, env, task_gin):
  model_dir = str(tmp_path_factory.mktemp("trained") / "run")
  proc = run(train_argv(model_dir, task_gin), env)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return model_dir


@pytest.fixture
def run_copy(trained, tmp_path):
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained, model_dir)
  return model_dir


# ---------------------------------------------------------------------------------------------------- 1: resume
@pytest.mark.slow
@pytest.mark.parametrize("extra, fragments", [
    (["--gin.ROUTED='ffn'"], ["holds another model than the one requested: 8 param(s) differ",
                              f"layer_00/sub_0/skip_ffn/router/kernel: saved absent, requested {ROUTER}"]),
    (["--gin_file=models/skip_small.gin"], ["holds another model", "final_norm/scale: saved (64,), requested (128,)"]),
    (["--gin.BATCH_SIZE=16"], ["BATCH_SIZE=16 differs from the checkpoint's 8"]),
    (["--gin.LEARNING_RATE=1e38"], ["non-finite loss/gradients/params at step 5", "last good checkpoint is step 4"]),
], ids=["routers_moved", "bigger_model", "batch_size", "nan_stop"])
def test_a_refused_resume_changes_nothing(run_copy, env, task_gin, extra, fragments):
  before = snapshot(run_copy)
  proc = run(train_argv(run_copy, task_gin, *extra, steps=6), env)
  error = the_error(proc, *fragments)
  assert "corrupt" not in error
  assert snapshot(run_copy) == before  # config.gin, checkpoints, metrics: byte-identical; nothing renamed


@pytest.mark.slow
def test_a_compatible_change_goes_on_names_the_changes_and_keeps_the_old_config(run_copy, env, task_gin):
  before = snapshot(run_copy)
  with open(os.path.join(run_copy, "config.gin")) as f:
    old_config = f.read()
  proc = run(train_argv(run_copy, task_gin, "--gin.SKIP_RATIO=0.25", steps=6), env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = os.path.join(run_copy, "config.gin")
  assert (f"The config differs from {config} in 2 binding(s): SKIP_RATIO: 0.5 -> 0.25; TRAIN_STEPS: 4 -> 6"
          in proc.stdout.splitlines())
  assert "Input pipeline:" not in proc.stdout  # the input position was restored, not re-read
  after = snapshot(run_copy)
  for path in before:  # the old checkpoints are untouched
    if path.startswith(("checkpoints/2/", "checkpoints/4/")):
      assert after[path] == before[path], path
  with open(config) as f:
    new_config = f.read()
  assert "SKIP_RATIO = 0.25" in new_config
  history = sorted(os.listdir(os.path.join(run_copy, "config_history")))
  assert [name.split("-")[1] for name in history] == ["0", "4"]  # the run from step 0, the resume from step 4
  texts = [open(os.path.join(run_copy, "config_history", name)).read() for name in history]
  assert texts == [old_config, new_config]


# ------------------------------------------------------------------------------------------ 2: no tracebacks
@pytest.mark.slow
def test_every_checkpoint_truncated_is_one_error(run_copy, env, task_gin):
  for root, _, files in os.walk(os.path.join(run_copy, "checkpoints")):
    for name in files:
      if os.sep + "d" in root:  # the array data files
        path = os.path.join(root, name)
        os.truncate(path, os.path.getsize(path) // 2)
  before = snapshot(run_copy)
  proc = run(train_argv(run_copy, task_gin, steps=6), env)
  the_error(proc, "no restorable checkpoint in", "step 4:", "step 2:")
  assert snapshot(run_copy) == before


def test_a_fractional_count_is_refused(tmp_path, env, task_gin):
  """BATCH_SIZE=4.0 (TRAIN_STEPS=2.5 and the other counts: tests/commands/test_gin_utils.py, in process)."""
  model_dir = str(tmp_path / "run")
  the_error(run(train_argv(model_dir, task_gin, "--gin.BATCH_SIZE=4.0"), env), "BATCH_SIZE=4.0 must be an integer")
  assert not os.path.exists(model_dir)


@pytest.fixture
def mount_tmpfs(tmp_path):
  """mount(DIR, options): a tmpfs at DIR (unmounted afterwards); skips when mounting is not permitted."""
  mounted = []

  def mount(path, options):
    os.makedirs(path, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
      pytest.skip(f"mounting a tmpfs is not permitted here ({proc.stderr.strip() or proc.returncode})")
    mounted.append(str(path))
    return str(path)

  yield mount
  for path in mounted:
    subprocess.run(["umount", "-l", path], check=False)


def test_a_read_only_model_dir_is_one_error(mount_tmpfs, tmp_path, env, task_gin):
  model_dir = mount_tmpfs(tmp_path / "readonly", "ro,size=1m")
  proc = run(train_argv(model_dir, task_gin), env)
  the_error(proc, f"cannot write to the model dir {model_dir}: Read-only file system")
  assert "Model:" not in proc.stdout  # refused before anything compiled


@pytest.mark.slow
def test_a_full_disk_is_one_error(mount_tmpfs, tmp_path, env, task_gin):
  model_dir = os.path.join(mount_tmpfs(tmp_path / "tiny_disk", "size=1m"), "run")  # < one checkpoint
  proc = run(train_argv(model_dir, task_gin), env)
  the_error(proc, "could not write", "No space left on device")


# ------------------------------------------------------------------------------------------------ 3: no hang
def text_files_argv(model_dir: str, pattern: str, *extra: str) -> list:
  return [sys.executable, "-m", "skip_t5x.train", "--gin_file=runs/pretrain.gin", "--gin_file=models/skip_tiny.gin",
          f"--model_dir={model_dir}", "--gin.MIXTURE_OR_TASK_NAME='text_files_lm'",
          f"--gin.skip_t5x.data.sources.text_file_patterns.train='{pattern}'",
          "--gin.TASK_FEATURE_LENGTHS={'targets': 32}", "--gin.BATCH_SIZE=8", "--gin.MESH_DATA=8", "--gin.MESH_FSDP=1",
          "--gin.TRAIN_STEPS=20", "--gin.train/DatasetConfig.shuffle=False", *extra]


@pytest.mark.slow
def test_a_bad_jsonl_record_mid_run_ends_the_run_within_seconds(tmp_path, env):
  corpus = tmp_path / "corpus.jsonl"
  lines = [json.dumps({"text": f"the quick brown fox {i} jumps over the lazy dog"}) for i in range(400)]
  lines.insert(149, "{not json")  # line 150: read after the first batches, not by the up-front check
  corpus.write_text("\n".join(lines) + "\n")
  stdout = open(tmp_path / "stdout.txt", "w")
  proc = subprocess.Popen(text_files_argv(str(tmp_path / "run"), str(corpus)), cwd=helpers.REPO, env=env,
                          stdout=stdout, stderr=subprocess.PIPE, text=True)
  try:
    error, reported_at = None, None
    deadline = time.monotonic() + TIMEOUT_S
    for line in proc.stderr:
      if line.startswith("error:"):
        error, reported_at = line.strip(), time.monotonic()
        break
      assert time.monotonic() < deadline, "no error reported"
    assert error is not None, "the run ended without an error line"
    returncode = proc.wait(timeout=30)  # the hang this guards against: a tf.data thread blocking the exit
    exit_seconds = time.monotonic() - reported_at
  finally:
    if proc.poll() is None:
      proc.kill()
    stdout.close()
  assert returncode == 2 and exit_seconds < 15, (returncode, exit_seconds)
  assert f"{corpus}:150: not valid JSON" in error and "First step" in (tmp_path / "stdout.txt").read_text()


def test_a_failed_command_exits_even_when_a_thread_would_block_the_exit(env):
  """The guarantee behind 'no failure hangs': a non-daemon thread stuck forever (as a failed tf.data prefetch or
  orbax save can be) does not keep a failed command alive past cli.EXIT_GRACE_S."""
  program = ("import threading, time\n"
             "from skip_t5x import cli\n"
             "def main(argv):\n"
             "  threading.Thread(target=time.sleep, args=(3600,)).start()\n"
             "  with cli.command_errors():\n"
             "    raise ValueError('bad input')\n"
             "cli.run(main)\n")
  start = time.monotonic()
  proc = run([sys.executable, "-c", program], env)
  assert time.monotonic() - start < 60
  assert the_error(proc, "bad input") == "error: bad input"
  assert "forcing the exit" in proc.stderr


# ------------------------------------------------------------------------------- 4: data checked before compile
@pytest.mark.parametrize("kind", ["empty_file", "glob_matches_nothing"])
def test_missing_data_is_found_before_compiling_and_writing(tmp_path, env, kind):
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "empty.txt").write_text("")
  pattern = str(tmp_path / "data" / ("*.txt" if kind == "empty_file" else "*.jsonl"))
  model_dir = str(tmp_path / "run")
  proc = run(text_files_argv(model_dir, pattern), env)
  message = ("task 'text_files_lm' (split 'train', host shard 0 of 1) has no data" if kind == "empty_file"
             else f"text_files_lm: pattern '{pattern}' (split 'train') matches no file")
  the_error(proc, message)
  assert "Model:" not in proc.stdout
  assert not os.path.exists(model_dir)  # no folder left behind


# --------------------------------------------------------------------------------------- 5: one trainer per dir
def test_a_second_trainer_is_refused_naming_the_holder(tmp_path, env, task_gin):
  model_dir = str(tmp_path / "run")
  holder = run_lock.RunLock(model_dir)
  holder.acquire()
  try:
    before = snapshot(model_dir)
    proc = run(train_argv(model_dir, task_gin), env)
    the_error(proc, f"{model_dir} is in use by another trainer: pid {os.getpid()} on host {socket.gethostname()} "
                    "(since ")
    assert snapshot(model_dir) == before
  finally:
    holder.release()


@pytest.mark.slow
def test_a_stale_lock_of_a_dead_process_is_taken_over(run_copy, env, task_gin):
  gone = subprocess.Popen([sys.executable, "-c", "pass"])
  gone.wait()  # its pid no longer runs
  stale = {"host": socket.gethostname(), "pid": gone.pid, "since": "2024-01-01T00:00:00+00:00"}
  with open(os.path.join(run_copy, run_lock.LOCK_NAME), "w") as f:
    json.dump(stale, f)
  proc = run(train_argv(run_copy, task_gin, steps=4), env)  # already at step 4: restores, takes no step
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (f"Took over the stale lock of pid {gone.pid} on host {socket.gethostname()} (since "
          "2024-01-01T00:00:00+00:00): that process is no longer running") in proc.stdout.splitlines()
  assert not os.path.exists(os.path.join(run_copy, run_lock.LOCK_NAME))  # released on exit


# --------------------------------------------------------------------------------- 6: eval / infer on a non-run
@pytest.mark.parametrize("command", ["eval", "infer"])
def test_eval_and_infer_refuse_a_directory_that_is_not_a_run(tmp_path, env, command):
  model_dir = str(tmp_path / "not_a_run")
  os.makedirs(model_dir)
  proc = run([sys.executable, "-m", f"skip_t5x.{command}", f"--model_dir={model_dir}"], env)
  the_error(proc, f"error: {model_dir} is not a training run: it has no config.gin and no checkpoint")
  assert os.listdir(model_dir) == []
