"""One trainer per model dir: the lock refuses a second holder, takes over a dead one's, and leaves no file."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from skip_t5x.training import run_lock


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
  first = run_lock.RunLock(str(tmp_path))
  assert first.acquire() is None  # nothing to take over
  with open(first.path) as f:
    holder = json.load(f)
  assert (holder["host"], holder["pid"]) == (socket.gethostname(), os.getpid())
  second = run_lock.RunLock(str(tmp_path))  # another open file: flock conflicts even within one process
  expected = f"in use by another trainer: pid {os.getpid()} on host {socket.gethostname()} (since {holder['since']})"
  with pytest.raises(run_lock.RunDirError, match=re.escape(expected)):
    second.acquire()
  first.release()
  assert not os.path.exists(first.path)  # a finished run leaves no lock behind
  assert second.acquire() is None
  second.release()


def test_the_lock_of_a_killed_process_is_stale_and_taken_over(tmp_path):
  """A real process takes the lock and is SIGKILLed: its flock dies with it, its file stays."""
  program = ("import sys, time; from skip_t5x.training import run_lock; run_lock.RunLock(sys.argv[1]).acquire(); "
             "print('locked', flush=True); time.sleep(600)")
  holder = subprocess.Popen([sys.executable, "-c", program, str(tmp_path)], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(run_lock.RunDirError, match=f"pid {holder.pid} on host"):
      run_lock.RunLock(str(tmp_path)).acquire()
  finally:
    holder.kill()
    holder.wait()
  lock = run_lock.RunLock(str(tmp_path))
  stale = lock.acquire()
  assert stale is not None and stale.pid == holder.pid and not stale.is_running_here()
  assert run_lock.describe_takeover(stale) == (
      f"Took over the stale lock of pid {holder.pid} on host {socket.gethostname()} (since {stale.since}): "
      "that process is no longer running")
  lock.release()


def test_an_unwritable_model_dir_is_named(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")  # a file where the model dir should be: not writable as a folder, even for root
  with pytest.raises(run_lock.RunDirError, match=f"cannot write to the model dir {blocker}/run: "):
    run_lock.RunLock(str(blocker / "run")).acquire()
