"""A cluster check: join jax.distributed, then all-reduce over every device of every process.

    python -m launch local --num_processes=2 --devices_per_process=4 -- python -m launch.probe --steps=3

Each device contributes (its global index + 1), so every all-reduce must give D * (D + 1) / 2 for D global
devices; a wrong value or a hang means the processes do not form one cluster. `--steps`/`--sleep_s` keep it
running (each step is one cross-process collective), which is how the launcher's failure handling is tested.
"""
from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=1, help="number of all-reduces")
  parser.add_argument("--sleep_s", type=float, default=0.0, help="pause between all-reduces")
  parser.add_argument("--tpu", action="store_true", help="autodetect the cluster (Cloud TPU VM pods)")
  args = parser.parse_args(argv)

  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

  from skip_t5x import parallel

  if args.tpu:
    jax.distributed.initialize()
  else:
    parallel.initialize_distributed(parallel.DistributedConfig(initialization_timeout=120))
  devices = jax.devices()
  num_devices = len(devices)
  mesh = Mesh(np.array(devices), ("devices",))
  sharding = NamedSharding(mesh, P("devices"))
  # Each process provides the values of its own devices: [local_devices]
  local_values = np.array([devices.index(d) + 1 for d in jax.local_devices()], np.float32)
  values = jax.make_array_from_process_local_data(sharding, local_values, (num_devices,))  # [devices]
  total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))
  expected = num_devices * (num_devices + 1) / 2
  print(f"probe: process {jax.process_index()}/{jax.process_count()} with "
        f"{jax.local_device_count()} local of {num_devices} devices", flush=True)
  for step in range(1, args.steps + 1):
    got = float(total(values))
    if got != expected:
      print(f"probe: step {step}: all-reduce gave {got}, expected {expected}", file=sys.stderr, flush=True)
      return 1
    print(f"probe: step {step} ok (sum {got:g})", flush=True)
    if args.sleep_s:
      time.sleep(args.sleep_s)
  return 0


if __name__ == "__main__":
  sys.exit(main())
