r"""Regenerates the AOT table of docs/aot.md: paper-scale configs compiled for a 256-chip TPU topology.

  python bench/aot_table.py --topology=v5e:16x16 --out=bench/aot_table.json > /tmp/aot_table.md
  python bench/aot_table.py --sizes=5p8b --out=/tmp/a.json   # one size (run several sizes side by side)
  python bench/aot_table.py --from_json /tmp/a.json bench/aot_table.json   # table of saved results
  python bench/aot_table.py --sizes=1p7b --lengths=1024,8192 --variants=dense,'skip 0.5 gather' --out=/tmp/b.json

Every row is two `python -m skip_t5x.aot` subprocesses (abstract shapes only: nothing is materialised): a trace
(--nocompile: params and the program's matmul FLOPs, seconds) and a compile with its own timeout (memory per chip,
fits or not), so a slow or failing compile cannot take the others down. Rows: each model size, dense and the
skip model at SKIP_RATIO=0.5 with masked and gather dispatch, on gin/runs/pretrain.gin (batch 256 rows of --lengths
tokens, 1024 by default; pure FSDP over all chips). Prints a markdown table, with the attention implementations each
step runs; --out also keeps every report as JSON.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = ("400m", "1p7b", "5p8b")
VARIANTS = (
    ("dense", "dense_{size}.gin", []),
    ("skip 0.5 masked", "skip_{size}.gin", ["--gin.SKIP_RATIO=0.5", "--gin.DISPATCH='masked'"]),
    ("skip 0.5 gather", "skip_{size}.gin", ["--gin.SKIP_RATIO=0.5", "--gin.DISPATCH='gather'"]),
)


def run_row(topology: str, size: str, label: str, model_file: str, extra: list, timeout_s: float,
            compile_step: bool = True, length: int = 1024) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    json_out = os.path.join(tmp, "report.json")
    argv = [sys.executable, "-m", "skip_t5x.aot", f"--topology={topology}", "--gin_file=runs/pretrain.gin",
            f"--gin_file=models/{model_file.format(size=size)}", *extra,
            f"--gin.TASK_FEATURE_LENGTHS={{'targets': {length}}}", f"--json_out={json_out}",
            "--compile" if compile_step else "--nocompile"]
    start = time.monotonic()
    row = {"size": size, "variant": label, "length": length, "argv": argv[1:]}
    try:
      proc = subprocess.run(argv, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=timeout_s,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except subprocess.TimeoutExpired:
      row.update(status="timeout", message=f"compile did not finish within {timeout_s:.0f} s")
      return row
    row["wall_seconds"] = time.monotonic() - start
    if proc.returncode == 0 and os.path.exists(json_out):
      with open(json_out) as f:
        row.update(status="ok", report=json.load(f))
    else:
      errors = [l for l in proc.stdout.splitlines() if l.startswith("error:")]
      row.update(status="does_not_fit" if any("does not fit" in e for e in errors) else "error",
                 message=errors[-1] if errors else proc.stdout[-2000:])
    return row


def _gib(n: float) -> str:
  return f"{n / 2**30:.2f}"


def merge(rows: list) -> list:
  """One entry per (size, variant, length): the compiled report (memory) and any report (FLOPs, params)."""
  merged: dict = {}
  for row in rows:
    length = row.get("length", 1024)
    entry = merged.setdefault((row["size"], row["variant"], length),
                              {"size": row["size"], "variant": row["variant"], "length": length})
    report = row.get("report")
    if report and report.get("compiled", True):
      entry["compiled"] = report
    elif report:
      entry["traced"] = report
    else:
      entry["failure"] = row
  order = {s: i for i, s in enumerate(SIZES)}
  labels = [v[0] for v in VARIANTS]
  return sorted(merged.values(),
                key=lambda e: (order.get(e["size"], len(order)), e["length"], labels.index(e["variant"])))


def markdown(rows: list, topology: str) -> str:
  lines = [
      f"| model | variant | sequence | attention | params | fits on {topology} | "
      "HBM per chip, GiB: total (arguments + temporaries) | matmul TFLOPs per step (program) | "
      "analytic TFLOPs per step | compile s |",
      "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for entry in merge(rows):
    compiled, any_report = entry.get("compiled"), entry.get("compiled") or entry.get("traced")
    failure = entry.get("failure")
    if compiled:
      fits = "yes" if compiled["fits"] else "no"
      memory = (f"{_gib(compiled['total_bytes'])} of {_gib(compiled['hbm_bytes'])} "
                f"({_gib(compiled['argument_bytes'])} + {_gib(compiled['temp_bytes'])})")
      seconds = f"{compiled['compile_seconds']:.0f}"
    elif failure and failure["status"] == "does_not_fit":
      fits, memory, seconds = "no", failure.get("message", "").replace("|", "/"), ""
    else:
      fits, memory, seconds = "not compiled", (failure or {}).get("message", "").replace("|", "/"), ""
    program = traced_flops = ""
    params = ""
    if any_report:
      params = f"{any_report['num_params'] / 1e9:.2f}B"
      flops_source = entry.get("traced") or any_report
      if flops_source.get("program_flops_per_step"):
        program = f"{flops_source['program_flops_per_step'] / 1e12:.0f}"
      traced_flops = f"{any_report['analytic_flops_per_step'] / 1e12:.0f}"
    attention = ", ".join((any_report or {}).get("attention", []))
    lines.append(f"| {entry['size']} | {entry['variant']} | {entry['length']} | {attention} | {params} | {fits} | "
                 f"{memory} | {program} | {traced_flops} | {seconds} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--topology", default="v5e:16x16")
  parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated model sizes (gin/models/*_SIZE.gin)")
  parser.add_argument("--lengths", default="1024", help="comma-separated sequence lengths (TASK_FEATURE_LENGTHS)")
  parser.add_argument("--variants", default=",".join(v[0] for v in VARIANTS), help="comma-separated variant labels")
  parser.add_argument("--timeout_s", type=float, default=1200.0, help="per-row compile limit")
  parser.add_argument("--out", help="write all rows (with full reports) as JSON here")
  parser.add_argument("--from_json", nargs="+", help="print the table of earlier --out files, compiling nothing")
  parser.add_argument("--trace_only", action="store_true",
                      help="trace only (FLOPs and params in seconds per row), no memory figures")
  args = parser.parse_args(argv)
  if args.from_json:
    rows = []
    for path in args.from_json:
      with open(path) as f:
        rows += json.load(f)["rows"]
    print(markdown(rows, args.topology))
    return 0
  chosen = args.variants.split(",")
  unknown = [v for v in chosen if v not in [label for label, _, _ in VARIANTS]]
  if unknown:
    parser.error(f"unknown --variants {unknown}; known: {[label for label, _, _ in VARIANTS]}")
  rows = []
  for size, length in itertools.product(args.sizes.split(","), [int(n) for n in args.lengths.split(",")]):
    for label, model_file, extra in [v for v in VARIANTS if v[0] in chosen]:
      for compile_step in ((False,) if args.trace_only else (False, True)):
        row = run_row(args.topology, size, label, model_file, extra, args.timeout_s, compile_step, length)
        print(f"{size} {label} {length} {'compile' if compile_step else 'trace'}: {row['status']} "
              f"({row.get('wall_seconds', 0):.0f} s)", file=sys.stderr, flush=True)
        rows.append(row)
      if args.out:
        with open(args.out, "w") as f:
          json.dump({"topology": args.topology, "rows": rows}, f, indent=1)
  print(markdown(rows, args.topology))
  return 0


if __name__ == "__main__":
  sys.exit(main())
