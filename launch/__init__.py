"""Launching skip_t5x experiments: experiments, work units and executors (local processes, Cloud TPU VMs).

    from launch import Experiment, TpuVm, Local, product

An `Experiment` is what to run (gin files, overrides, a sweep, model_dir template, topology); each sweep point
is a `WorkUnit`. Executors decide where: `TpuVm` prints (or runs) the gcloud commands for Cloud TPU VM slices,
`Local` runs a work unit as several jax.distributed processes on this machine; both restart a failed work unit
as their `RestartPolicy` allows. See docs/launch.md.
"""
from launch.experiment import Experiment, Raw, WorkUnit, gin_literal, product, zipped
from launch.local import Local, LocalResult, run_processes, run_with_restarts, run_work_unit
from launch.restart import RestartPolicy
from launch.tpu_vm import TpuVm, format_plan
from launch.tpus import Topology

__all__ = [
    "Experiment", "Raw", "WorkUnit", "gin_literal", "product", "zipped",
    "Local", "LocalResult", "run_processes", "run_with_restarts", "run_work_unit", "RestartPolicy",
    "TpuVm", "format_plan", "Topology",
]
