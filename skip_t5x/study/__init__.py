"""Study: the paper's comparison as one command. Arms (a model gin file plus overrides) trained on one shared token
budget over several seeds, each by the train and eval commands as subprocesses, then measured (held-out loss,
routing statistics, step time) and compared in a report with tables and plots.

  spec.py      Study / Arm (gin), the runs and their command lines      configs.py  gin parsing, one config at a time
  runner.py    train + eval subprocesses, resumable, streamed progress  progress.py the study's share done and ETA
  measure.py   held-out loss and routing tally of a finished run         timing.py   side-by-side train-step timing
  session.py   one study command from start to report                  runs.py     run directories as the report reads
  stats.py headline.py tables.py plots.py report.py                      the report: numbers, sentences, tables, PNGs

May import: evaluation, training, model, layers, parallel, data and gin_utils; never the commands. Importing the
package registers the ``Study`` and ``Arm`` gin configurables (gin/studies/*.gin say ``import skip_t5x.study``).
The commands are ``python -m skip_t5x.study`` (__main__.py) and ``python -m skip_t5x.report``.
"""
from skip_t5x.study.spec import Arm, ArmRun, Study, StudyArm  # noqa: F401
