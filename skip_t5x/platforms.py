"""Keeps libtpu quiet on machines without TPU chips.

The `[tpu]` extra installs libtpu so that any machine can compile ahead of time for TPU topologies. On a machine
without TPU chips, jax's TPU plugin then probes the cloud metadata server for TPU hosts and prints
TPU_WORKER_HOSTNAMES / accelerator-type errors at the first device query. Telling libtpu that this is a
single, local host (and skipping the metadata query) silences that; TPU topology descriptions for AOT still work.
On a TPU VM (TPU device files present) nothing is changed.
"""
from __future__ import annotations

import glob
import os
from typing import MutableMapping, Optional

LOCAL_LIBTPU_ENV = {
    "TPU_SKIP_MDS_QUERY": "1",
    "TPU_WORKER_HOSTNAMES": "localhost",
    "TPU_ACCELERATOR_TYPE": "v5litepod-4",  # any valid type; only read when no metadata server is asked
}


def has_tpu_chips() -> bool:
  """TPU VMs expose their chips as /dev/accel* (v2-v5e) or /dev/vfio/* (v5p, v6e)."""
  return bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def quiet_absent_tpu(environ: Optional[MutableMapping[str, str]] = None, tpu_chips: Optional[bool] = None) -> bool:
  """Sets LOCAL_LIBTPU_ENV (without overriding the user's values) when there are no TPU chips; returns whether."""
  environ = os.environ if environ is None else environ
  if has_tpu_chips() if tpu_chips is None else tpu_chips:
    return False
  for name, value in LOCAL_LIBTPU_ENV.items():
    environ.setdefault(name, value)
  return True
