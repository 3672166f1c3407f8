r"""AOT command: compile the train step for a TPU topology on any machine with libtpu installed.

  python -m skip_t5x.aot --topology=v5e:16x16 --gin_file=gin/runs/pretrain.gin \
      --gin_file=gin/models/skip_1p7b.gin --gin.DISPATCH="'gather'"

Compiles exactly the program training builds (skip_t5x/training/aot.py calls training's `build_program`) and prints
per-chip memory, FLOPs per step and the largest arrays' shardings. Exit status 2 on bad flags or gin, 1 when the
mesh does not fit the topology or the step does not fit in HBM. See docs/aot.md.
"""
from __future__ import annotations

import json
import sys
from typing import Sequence

from absl import flags
import gin

from skip_t5x import cli
from skip_t5x import gin_utils
from skip_t5x.training.aot_report import AotError, AotReport, DoesNotFitError, format_gib, format_report


def run(topology: str, gin_files: Sequence[str], gin_bindings: Sequence[str] = (),
        gin_search_paths: Sequence[str] = (), top_arrays: int = 8,
        compile: bool = True) -> AotReport:  # pylint: disable=redefined-builtin
  """Parses the gin config as the train command would and compiles its train step for `topology`.

  Raises GinConfigError / ValueError on a bad config, AotError when the mesh does not fit the topology, and
  DoesNotFitError (with the report when there is one) when the step does not fit in HBM.
  """
  from skip_t5x.training import aot as aot_lib  # pylint: disable=g-import-not-at-top

  cli.import_registrations()
  gin.clear_config()
  gin_utils.parse_gin(gin_files, gin_bindings, gin_search_paths,
                      extra_bindings={"MODEL_DIR": "/tmp/skip_t5x_aot_unused"}, finalize=False)
  report = aot_lib.compile_train_step(topology, top_arrays=top_arrays, compile=compile)
  report.gin_files = list(gin_files)
  report.gin_bindings = list(gin_bindings)
  if report.fits is False:
    raise DoesNotFitError(
        f"the train step needs {format_gib(report.total_bytes)} per chip but a {report.device_kind} chip has "
        f"{format_gib(report.hbm_bytes)}: shard more (MeshConfig fsdp/model), use remat, microbatches or a smaller "
        "batch", report=report)
  return report


def _define_flags() -> None:
  cli.define_flags()
  if "topology" not in flags.FLAGS:
    flags.DEFINE_string("topology", None, "TPU topology, e.g. v5e:16x16, v5e:2x2, v4:4x4x8.")
    flags.DEFINE_integer("top_arrays", 8, "How many of the largest train-state arrays to list.")
    flags.DEFINE_string("json_out", None, "Also write the report as JSON to this path.")
    flags.DEFINE_bool("compile", True, "Compile (memory figures); --nocompile only traces (FLOPs, shardings).")


def main(argv: Sequence[str]) -> None:
  cli.no_positional_args(argv)
  fl = flags.FLAGS
  if not fl.topology:
    raise SystemExit("error: --topology is required, e.g. --topology=v5e:16x16")
  try:
    with cli.command_errors():
      report = run(fl.topology, fl.gin_file, fl.gin_bindings, fl.gin_search_paths, fl.top_arrays, fl.compile)
  except (DoesNotFitError, AotError) as e:
    if isinstance(e, DoesNotFitError) and e.report is not None:
      print(format_report(e.report), flush=True)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(format_report(report), flush=True)
  if fl.json_out:
    with open(fl.json_out, "w") as f:
      json.dump(report.to_json(), f, indent=1)


def console_entry() -> None:
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  console_entry()
