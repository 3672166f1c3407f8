"""Multi-host start-up: jax.distributed from flags or SKIP_T5X_* environment variables."""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional

from absl import logging
import gin
import jax


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DistributedConfig:
  """Multi-process settings; empty values fall back to the environment variables in brackets.

  coordinator_address [SKIP_T5X_COORDINATOR], num_processes [SKIP_T5X_NUM_PROCESSES],
  process_id [SKIP_T5X_PROCESS_ID]. Timeouts are in seconds.
  """

  coordinator_address: Optional[str] = None
  num_processes: Optional[int] = None
  process_id: Optional[int] = None
  initialization_timeout: int = 300
  heartbeat_timeout: int = 100


def initialize_distributed(config: Optional[DistributedConfig] = None,
                           env: Optional[Mapping[str, str]] = None) -> bool:
  """Calls jax.distributed.initialize when more than one process is requested; returns whether it did.

  Must run before anything touches jax devices. With a single process (the default) this is a no-op. On TPU pods
  jax can discover peers itself: set SKIP_T5X_NUM_PROCESSES and leave the address empty.
  """
  config = config or DistributedConfig()
  env = os.environ if env is None else env
  address = config.coordinator_address or env.get("SKIP_T5X_COORDINATOR") or None
  num = config.num_processes or (int(env["SKIP_T5X_NUM_PROCESSES"]) if env.get("SKIP_T5X_NUM_PROCESSES") else None)
  pid = config.process_id
  if pid is None and env.get("SKIP_T5X_PROCESS_ID"):
    pid = int(env["SKIP_T5X_PROCESS_ID"])
  if not num or num <= 1:
    return False
  if pid is not None and not 0 <= pid < num:
    raise ValueError(f"process_id={pid} is outside [0, num_processes={num})")
  logging.info("jax.distributed.initialize(coordinator=%s, num_processes=%d, process_id=%s)", address, num, pid)
  jax.distributed.initialize(
      coordinator_address=address,
      num_processes=num,
      process_id=pid,
      initialization_timeout=config.initialization_timeout,
      heartbeat_timeout_seconds=config.heartbeat_timeout,
  )
  return True
