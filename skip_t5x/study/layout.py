"""Where a study keeps its files.

  STUDY_DIR/study.json                    the study (arms, budget, options), written when it starts
  STUDY_DIR/report.md, report.json, *.png the report
  STUDY_DIR/<arm>/seed<k>/                a run directory, as `python -m skip_t5x.train --model_dir=` makes it
      study/arm.json                      which arm and seed this run is (read by the report)
      study/done.json                     written after the run's evaluation: the run is finished
      study/analysis.json                 held-out loss, routing statistics, parameters and FLOPs (in-process)
      study/timing.json                   train-step wall time at masked and gather dispatch (first seed only)
      study/logs/<phase>.log              the output of its train and eval commands
"""
from __future__ import annotations

import os

STUDY_JSON = "study.json"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"


def study_file(run_dir: str, name: str) -> str:
  return os.path.join(run_dir, "study", name)


def arm_json(run_dir: str) -> str:
  return study_file(run_dir, "arm.json")


def done_json(run_dir: str) -> str:
  return study_file(run_dir, "done.json")


def analysis_json(run_dir: str) -> str:
  return study_file(run_dir, "analysis.json")


def timing_json(run_dir: str) -> str:
  return study_file(run_dir, "timing.json")


def log_path(run_dir: str, phase: str) -> str:
  return study_file(run_dir, os.path.join("logs", f"{phase}.log"))
