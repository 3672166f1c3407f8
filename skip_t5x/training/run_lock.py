"""One trainer per model dir: MODEL_DIR/train.lock, held by process 0 for the whole run.

The lock is an ``flock`` on the file, so it goes away with its process however that process ends (SIGKILL
included). The file names the holder (host, pid, since when): a second trainer is refused with a message naming it.
A lock file whose flock is free was left by a trainer that is gone (stale): it is taken over, and the run says whose
it was. Only process 0 of a multi-process run takes the lock; the others learn the outcome from it. Object-store
model dirs (``gs://...``) have no file locks, so no lock is taken there.
"""
from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import socket
from typing import Optional

from absl import logging
import jax
import numpy as np

LOCK_NAME = "train.lock"


class RunDirError(RuntimeError):
  """The model dir cannot be used by this run: another trainer holds it, or it cannot be written."""


@dataclasses.dataclass(frozen=True)
class Holder:
  """Who holds (or held) a lock."""

  host: str
  pid: int
  since: str  # ISO time

  @classmethod
  def me(cls) -> "Holder":
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return cls(host=socket.gethostname(), pid=os.getpid(), since=now)

  def describe(self) -> str:
    return f"pid {self.pid} on host {self.host} (since {self.since})"

  def is_running_here(self) -> bool:
    """Whether this pid is alive on this host (False for other hosts: we cannot tell)."""
    if self.host != socket.gethostname():
      return False
    try:
      os.kill(self.pid, 0)
    except ProcessLookupError:
      return False
    except PermissionError:
      return True
    return True


def _read_holder(fd: int) -> Optional[Holder]:
  os.lseek(fd, 0, os.SEEK_SET)
  try:
    record = json.loads(os.read(fd, 4096).decode("utf-8", errors="replace") or "null")
    return Holder(host=str(record["host"]), pid=int(record["pid"]), since=str(record["since"]))
  except (ValueError, TypeError, KeyError):
    return None


class RunLock:
  """The lock of one model dir. ``acquire`` returns the stale holder it took over, if any."""

  def __init__(self, model_dir: str):
    self.model_dir = model_dir
    self.path = os.path.join(model_dir, LOCK_NAME)
    self._fd: Optional[int] = None

  def acquire(self) -> Optional[Holder]:
    fd = None
    try:
      os.makedirs(self.model_dir, exist_ok=True)
      for _ in range(5):  # the file may be unlinked by a releasing holder between our open and our flock
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
          fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
          holder = _read_holder(fd)
          os.close(fd)
          fd = None
          who = holder.describe() if holder else "another process"
          raise RunDirError(f"{self.model_dir} is in use by another trainer: {who} holds {self.path}. "
                            "Wait for it to finish or stop it; two trainers on one model dir would overwrite "
                            "each other's checkpoints and metrics") from None
        if os.path.exists(self.path) and os.fstat(fd).st_ino == os.stat(self.path).st_ino:
          break
        os.close(fd)
        fd = None
      else:
        raise RunDirError(f"could not take the lock {self.path}: it keeps being replaced")
      stale = _read_holder(fd)
      os.ftruncate(fd, 0)
      os.lseek(fd, 0, os.SEEK_SET)
      os.write(fd, json.dumps(dataclasses.asdict(Holder.me())).encode())
      os.fsync(fd)
    except OSError as e:
      if fd is not None:
        os.close(fd)
      raise RunDirError(f"cannot write to the model dir {self.model_dir}: {e.strerror or e} "
                        f"({type(e).__name__}, errno {e.errno})") from e
    self._fd = fd
    return stale

  def release(self) -> None:
    """Removes the lock file (while still holding it), then lets go."""
    if self._fd is None:
      return
    try:
      os.unlink(self.path)
    except OSError as e:
      logging.warning("Could not remove %s: %s", self.path, e)
    os.close(self._fd)
    self._fd = None


def describe_takeover(stale: Holder) -> str:
  state = "is no longer running" if not stale.is_running_here() else "no longer holds it"
  return f"Took over the stale lock of {stale.describe()}: that process {state}"


def lock_model_dir(model_dir: str, say=print) -> Optional[RunLock]:
  """Process 0 takes MODEL_DIR's lock; every process raises RunDirError when it could not. None: no lock taken
  (not process 0, or an object-store path)."""
  lock, error = None, None
  if jax.process_index() == 0 and "://" not in model_dir:
    lock = RunLock(model_dir)
    try:
      stale = lock.acquire()
      if stale is not None:
        say(describe_takeover(stale))
    except RunDirError as e:
      lock, error = None, e
  elif "://" in model_dir:
    logging.info("No lock on %s: object stores have no file locks", model_dir)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    locked = bool(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
    if not locked and error is None:
      raise RunDirError(f"process 0 could not take the lock of {model_dir} (its log says why)")
  if error is not None:
    raise error
  return lock
