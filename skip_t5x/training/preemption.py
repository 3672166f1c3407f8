"""SIGTERM as a request to stop: set by the signal handler, read once per step and agreed across processes."""
from __future__ import annotations

import signal
import threading

import jax
import numpy as np


class PreemptionFlag:
  """Set by SIGTERM; ``is_set`` is True on every process as soon as one of them received it."""

  def __init__(self):
    self._event = threading.Event()
    self._previous = None

  def install(self) -> None:
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._event.set())

  def uninstall(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def is_set(self) -> bool:
    local = self._event.is_set()
    if jax.process_count() == 1:
      return local
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    return bool(np.any(multihost_utils.process_allgather(np.asarray(local))))
