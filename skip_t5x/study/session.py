"""One run of the study command: check every arm, train and evaluate the runs, measure them, time the arms, report.

Order matters on accelerators: the train and eval commands are subprocesses that need the devices to themselves,
so this process touches no device until they are all done; only then does it measure the runs (held-out loss,
routing statistics) and time the arms' train steps, in-process. Every step is resumable: finished runs are not run
again, and analyses and timings already written are kept (an analysis is dropped when its run trains again).
"""
from __future__ import annotations

import os
import sys
import time
from typing import List, Optional, Sequence, TextIO

from skip_t5x.study import configs, files, layout
from skip_t5x.study import report as report_lib
from skip_t5x.study import spec as spec_lib
from skip_t5x.study.runner import StudyRunner


def plan_runs(study: spec_lib.Study, study_dir: Optional[str], model_dir: Optional[str],
              search_paths: Sequence[str] = ()) -> List[spec_lib.ArmRun]:
  """The selected runs with depths resolved; with `model_dir`, the one selected arm and seed run there."""
  arms = configs.resolve_arms(study, search_paths)
  if model_dir is None:
    if not study_dir:
      raise ValueError("give --study_dir (or --model_dir for a single arm and seed)")
    return study.runs(study_dir, arms)
  if len(arms) != 1 or len(study.seeds) != 1:
    raise ValueError(f"--model_dir={model_dir!r} runs one arm and one seed; select them with "
                     f"--gin.STUDY_ARMS=\"('name',)\" --gin.SEEDS=\"(k,)\" (selected: {[a.name for a in arms]} "
                     f"x seeds {list(study.seeds)})")
  return [spec_lib.ArmRun(arm=arms[0], seed=study.seeds[0], run_dir=model_dir)]


def check_runs(study: spec_lib.Study, runs: Sequence[spec_lib.ArmRun], search_paths: Sequence[str] = ()) -> None:
  """Parses and builds every arm's training config as its command will, before anything runs."""
  checked = set()
  for run in runs:
    if run.arm.name not in checked:
      configs.run_train_spec(study, run, search_paths)
      checked.add(run.arm.name)


def measure_runs(study: spec_lib.Study, runs: Sequence[spec_lib.ArmRun], say) -> None:
  """Writes RUN/study/analysis.json for every finished run that lacks one."""
  import jax  # pylint: disable=g-import-not-at-top
  from skip_t5x.study import measure  # pylint: disable=g-import-not-at-top

  cache: dict = {}
  for run in runs:
    if files.exists(layout.analysis_json(run.run_dir)) or not files.exists(layout.done_json(run.run_dir)):
      continue
    start = time.perf_counter()
    analysis = measure.measure_run(study, run.run_dir, cache)
    if jax.process_index() == 0:
      files.write_json(layout.analysis_json(run.run_dir), analysis)
    heldout = analysis["heldout"]
    density = heldout["density"]
    say(f"[measure {run.key}] held-out loss {heldout['cross_entropy']:.4f} over {heldout['tokens']:.0f} tokens"
        + (f", density {density:.3f}" if density is not None else "") + f" ({time.perf_counter() - start:.0f}s)")


def time_runs(study: spec_lib.Study, runs: Sequence[spec_lib.ArmRun], say) -> None:
  """Times every finished arm's train step (first seed) side by side when any of them has no timing yet."""
  import jax  # pylint: disable=g-import-not-at-top
  from skip_t5x.study import timing  # pylint: disable=g-import-not-at-top

  firsts = {}
  for run in runs:
    if run.arm.name not in firsts and files.exists(layout.done_json(run.run_dir)):
      firsts[run.arm.name] = run
  if study.timing_steps == 0 or not firsts or all(files.exists(layout.timing_json(r.run_dir))
                                                   for r in firsts.values()):
    return
  say(f"[timing] {len(firsts)} arm(s) x masked/gather dispatch, {study.timing_rounds} rounds of "
      f"{study.timing_steps} steps")
  arms = [(name, run.run_dir, configs.trained_spec(run.run_dir).model.config.routing.enabled)
          for name, run in firsts.items()]
  result = timing.time_arms(arms, study.timing_steps, study.timing_rounds)
  session = time.strftime("%Y%m%d-%H%M%S")
  for name, run in firsts.items():
    record = {"seconds_per_step": result[name], "session": session, "timed_with": sorted(firsts),
              "steps": study.timing_steps, "rounds": study.timing_rounds,
              "device": jax.devices()[0].device_kind, "num_devices": jax.device_count()}
    if jax.process_index() == 0:
      files.write_json(layout.timing_json(run.run_dir), record)
    say(f"[timing] {name}: " + ", ".join(f"{mode} {1000 * s:.1f} ms/step" for mode, s in result[name].items()))


def run_study(study: spec_lib.Study, study_dir: Optional[str], *, model_dir: Optional[str] = None,
              search_paths: Sequence[str] = (), write_report: bool = True, out: Optional[TextIO] = None,
              env=None) -> int:
  """The whole study (see the module docstring); returns the exit status: 0, or 1 when a run failed."""
  out = out or sys.stdout
  say = lambda text: print(text, file=out, flush=True)  # noqa: E731
  runs = plan_runs(study, study_dir, model_dir, search_paths)
  check_runs(study, runs, search_paths)
  if study_dir and model_dir is None:
    files.write_json(os.path.join(study_dir, layout.STUDY_JSON), study.to_json())
  say(f"Study {study.name}: {len(runs)} run(s) ({len({r.arm.name for r in runs})} arms x {len(study.seeds)} seeds), "
      f"{study.tokens_per_arm:,} training tokens each")
  outcome = StudyRunner(study, runs, env=env, out=out, search_paths=search_paths).run()
  from skip_t5x import parallel  # pylint: disable=g-import-not-at-top  (devices only after the subprocesses)

  parallel.initialize_distributed()
  measure_runs(study, runs, say)
  time_runs(study, runs, say)
  if write_report and model_dir is None:
    report = report_lib.build_report([study_dir], study_dir)
    say("\n" + report.table + "\n")
    for group, head in report.data["headline"].items():
      say((f"{group}: " if group else "") + " ".join(head["sentences"]))
    say(f"\nReport: {report.paths['markdown']} (and {layout.REPORT_JSON}, "
        f"{', '.join(os.path.basename(p) for k, p in report.paths.items() if p.endswith('.png'))}) in {study_dir}")
  elif model_dir is not None:
    say(f"Run finished in {model_dir}; when every run is, build the report with python -m skip_t5x.report DIR...")
  for key, error in outcome.failed.items():
    say(f"FAILED {key}: {error.splitlines()[0]}")
  return 1 if outcome.failed else 0
