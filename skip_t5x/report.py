r"""Report command: the study report from any set of finished run directories (local or gs://).

  python -m skip_t5x.report runs/paper_cpu                       # a study directory (<arm>/seed<k>/ inside)
  python -m skip_t5x.report gs://bucket/paper-study --out=report/ --reference=dense_matched --method=skip_p50
  python -m skip_t5x.report runs/a runs/b runs/c --out=runs/compare      # hand-made runs: one arm each

Writes OUT/report.md, OUT/report.json and PNGs beside them (OUT defaults to the only directory given). The work is
skip_t5x/study/report.py; see docs/study.md.
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("dirs", nargs="+", help="study directories or run directories")
  parser.add_argument("--out", default=None, help="where report.md goes (default: the directory, if only one)")
  parser.add_argument("--reference", default=None, help="the matched dense arm (default: as the study recorded)")
  parser.add_argument("--method", default=None, help="the method's arm (default: as the study recorded)")
  args = parser.parse_args(argv)
  out = args.out or (args.dirs[0] if len(args.dirs) == 1 else None)
  if out is None:
    print("error: give --out when reporting on several directories", file=sys.stderr)
    return 2
  from skip_t5x.study import report  # pylint: disable=g-import-not-at-top

  try:
    result = report.build_report(args.dirs, out, reference=args.reference, method=args.method)
  except (ValueError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(result.table + "\n")
  for group, head in result.data["headline"].items():
    print((f"{group}: " if group else "") + " ".join(head["sentences"]))
  print("\nWrote " + ", ".join(sorted(result.paths.values())))
  return 0


if __name__ == "__main__":
  sys.exit(main())
