"""Train-step wall time of each arm at masked and at gather dispatch, timed side by side in one process.

Seconds per step in RUN/metrics/train.jsonl come from runs at different times on a machine others share, so they
are too noisy to compare arms. Here every arm's jitted train step (``training.build_program`` from the run's
config.gin with ``DISPATCH`` set to each mode) is compiled, warmed up and then timed in rounds that take the arms in
turn, on one and the same batch; each figure is the median over rounds. Dispatch does not matter without routers,
so a dense arm is timed once and that figure stands for both modes. Fresh params are used: the wall time of a step
depends on shapes (and, for gather, on the fixed capacity), not on what the params have learned.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jax
from jax.sharding import NamedSharding, PartitionSpec

from skip_t5x import parallel
from skip_t5x.study import configs
from skip_t5x.training import input_pipeline
from skip_t5x.training.program import build_program

DISPATCH_MODES = ("masked", "gather")


@dataclasses.dataclass
class TimingJob:
  """One arm at one dispatch mode: its compiled step, a live train state and the shared batch on its mesh."""

  arm: str
  dispatch: str
  program: Any
  state: Any
  batch: Any
  rng: Any
  seconds: List[float] = dataclasses.field(default_factory=list)

  def steps(self, count: int) -> float:
    """Runs `count` steps; returns the wall seconds per step."""
    with self.program.placement.context():
      start = time.perf_counter()
      for _ in range(count):
        self.state, metrics = self.program.step_fn(self.state, self.batch, self.rng)
      jax.block_until_ready(metrics)
    return (time.perf_counter() - start) / count


def prepare(arm: str, run_dir: str, dispatch: str, host_batch: Dict[str, Any]) -> TimingJob:
  """Builds, compiles and warms up the arm's train step at `dispatch`."""
  spec = configs.trained_spec(run_dir, {"DISPATCH": dispatch})
  program = build_program(spec, data_checks=False)
  placement = program.placement
  with placement.context():
    state = program.init_state(jax.random.key(0))
    batch = parallel.make_global_batch(host_batch, placement.mesh, placement.rules)
    rng = jax.jit(lambda: jax.random.key(1), out_shardings=NamedSharding(placement.mesh, PartitionSpec()))()
  job = TimingJob(arm=arm, dispatch=dispatch, program=program, state=state, batch=batch, rng=rng)
  job.steps(1)  # compiles
  return job


def first_batch(run_dir: str) -> Dict[str, Any]:
  """The first training batch of a run's data config (the same for every arm: they share mixture and budget)."""
  spec = configs.trained_spec(run_dir)
  return next(input_pipeline.batch_iterator(spec.dataset, jax.process_index(), jax.process_count()))


def time_arms(arms: Sequence[Tuple[str, str, bool]], steps: int, rounds: int) -> Dict[str, Dict[str, Optional[float]]]:
  """{arm: {'masked': s, 'gather': s}} for (arm name, run dir, has routers) triples, timed side by side."""
  if not arms or steps <= 0:
    return {}
  host_batch = first_batch(arms[0][1])
  jobs = [prepare(name, run_dir, mode, host_batch)
          for name, run_dir, routed in arms for mode in (DISPATCH_MODES if routed else DISPATCH_MODES[:1])]
  for round_index in range(rounds):
    shift = round_index % len(jobs)  # a different arm goes first each round
    for job in jobs[shift:] + jobs[:shift]:
      job.seconds.append(job.steps(steps))
  result: Dict[str, Dict[str, Optional[float]]] = {}
  for job in jobs:
    result.setdefault(job.arm, {})[job.dispatch] = statistics.median(job.seconds)
  for name, _, routed in arms:
    if not routed:
      result[name]["gather"] = result[name]["masked"]
  return result
