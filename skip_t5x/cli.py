"""What every command shares: the same flags, gin parsing, jax.distributed start-up and one way to fail.

Every command (train, eval, infer, aot) defines the same flags: --gin_file, --gin.NAME=VALUE / --gin_bindings,
--gin_search_paths, --model_dir, --use_train_config and the distributed ones (--coordinator_address,
--num_processes, --process_id). A known fault ends the command with one ``error: ...`` line and exit status 2
(``command_errors``, ``fail``), never a traceback, and a failing command never hangs on its way out (``run``
forces the exit when threads left behind by the failure keep the interpreter from ending).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging as std_logging
import os
import sys
import threading
import time
from typing import Callable, List, NoReturn, Sequence

from absl import flags
from absl import logging

from skip_t5x import gin_utils
from skip_t5x import parallel

EXIT_GRACE_S = 10.0  # a failing command that has not exited this long after its error is ended by force
_QUIET_LIBRARIES = ("/orbax/", "/tensorstore/")  # their error logs repeat (with tracebacks) what we report


def define_flags() -> None:
  """The flags of every command (idempotent: tests may define them for several commands in one process)."""
  gin_utils.define_flags()
  definitions = (
      (flags.DEFINE_string, "model_dir", None, "The run's directory: checkpoints/, metrics/, config.gin, eval/."),
      (flags.DEFINE_bool, "use_train_config", True, "eval/infer: parse MODEL_DIR/config.gin (the training config) "
       "first, so the evaluated model is the trained one."),
      (flags.DEFINE_string, "coordinator_address", None, "host:port of process 0 (multi-process runs)."),
      (flags.DEFINE_integer, "num_processes", None, "Number of processes (multi-process runs)."),
      (flags.DEFINE_integer, "process_id", None, "This process's id in [0, num_processes)."),
  )
  for define, name, default, help_text in definitions:
    if name not in flags.FLAGS:
      define(name, default, help_text)


class _HideLibraryLogs(std_logging.Filter):
  """Drops orbax's and tensorstore's log records, and asyncio's (only their writes use it: a failed one leaves
  dozens of 'exception was never retrieved' futures): the command reports the failure itself in one line."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.name != "asyncio" and not any(part in record.pathname for part in _QUIET_LIBRARIES)


def quiet_logs_unless_verbose() -> None:
  """absl logs INFO to stderr by default; keep the console to progress lines (and our own warnings) unless
  --verbosity is given."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
    for logger in (std_logging.getLogger("absl"), std_logging.getLogger("asyncio")):
      if not any(isinstance(f, _HideLibraryLogs) for f in logger.filters):
        logger.addFilter(_HideLibraryLogs())


def fail(message: str) -> NoReturn:
  """Ends the command with one 'error: MESSAGE' line on stderr and exit status 2."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  raise SystemExit(2)


def import_registrations() -> None:
  """Imports the modules whose import registers gin configurables and seqio tasks."""
  # pylint: disable=g-import-not-at-top,unused-import
  import skip_t5x.data.tasks  # noqa: F401
  import skip_t5x.evaluation  # noqa: F401
  import skip_t5x.model.decoder_only  # noqa: F401
  import skip_t5x.training  # noqa: F401


def distributed_from_flags() -> parallel.DistributedConfig:
  fl = flags.FLAGS
  base = parallel.DistributedConfig()
  return dataclasses.replace(
      base,
      coordinator_address=fl.coordinator_address or base.coordinator_address,
      num_processes=fl.num_processes or base.num_processes,
      process_id=fl.process_id if fl.process_id is not None else base.process_id,
  )


def no_positional_args(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    fail(f"unexpected arguments {list(argv[1:])}")


def require_model_dir(argv: Sequence[str]) -> str:
  """The --model_dir of a command; no positional arguments allowed."""
  no_positional_args(argv)
  if not flags.FLAGS.model_dir:
    fail("--model_dir is required")
  return flags.FLAGS.model_dir


def require_trained_run(model_dir: str) -> None:
  """eval / infer read a training run: DIR must hold its config.gin or a checkpoint."""
  has_config = os.path.isfile(os.path.join(model_dir, gin_utils.TRAIN_CONFIG))
  has_checkpoints = os.path.isdir(os.path.join(model_dir, "checkpoints"))
  if flags.FLAGS.use_train_config and not has_config and not has_checkpoint_dirs(model_dir, has_checkpoints):
    fail(f"{model_dir} is not a training run: it has no {gin_utils.TRAIN_CONFIG} and no checkpoint (train into it "
         "first, or pass --nouse_train_config and a model --gin_file)")


def has_checkpoint_dirs(model_dir: str, has_checkpoints: bool) -> bool:
  if not has_checkpoints:
    return False
  return any(name.isdigit() for name in os.listdir(os.path.join(model_dir, "checkpoints")))


def parse_gin_for_training(model_dir: str) -> None:
  """train / aot: the given gin files and bindings, with MODEL_DIR set."""
  import_registrations()
  gin_utils.parse_gin_flags(extra_bindings={"MODEL_DIR": model_dir})


def parse_gin_for_trained_run(model_dir: str, gin_files: Sequence[str]) -> None:
  """eval / infer: MODEL_DIR/config.gin first (unless --nouse_train_config), then `gin_files`, then bindings."""
  fl = flags.FLAGS
  import_registrations()
  files = gin_utils.train_config_first(model_dir, gin_files, fl.use_train_config)
  gin_utils.parse_gin(files, fl.gin_bindings, fl.gin_search_paths, extra_bindings={"MODEL_DIR": model_dir})


def start_distributed() -> None:
  parallel.initialize_distributed(distributed_from_flags())


@contextlib.contextmanager
def command_errors(*extra: type):
  """Known faults (bad config, bad input, missing files) end the command with one 'error:' line, exit 2."""
  message = None
  try:
    yield
  except (gin_utils.GinConfigError, ValueError, FileNotFoundError, *extra) as e:
    message = " ".join(str(e).split()) or type(e).__name__
  if message is not None:
    fail(message)  # outside the handler: no reference to the failed frames (and their pipelines) is kept


def _force_exit_after(seconds: float, code: int) -> None:
  """A daemon thread that ends the process with `code` if it is still alive after `seconds`: interpreter exit
  joins every non-daemon thread first, and one stuck in a failed library (a tf.data prefetch, an orbax save)
  would keep a failed command alive forever."""

  def watchdog():
    time.sleep(seconds)
    print(f"note: still exiting {seconds:.0f}s after the failure above; forcing the exit", file=sys.stderr,
          flush=True)
    os._exit(code)  # pylint: disable=protected-access

  threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()


def run(main: Callable[[List[str]], None]) -> None:
  """The console entry of a command: its flags, --gin.X=Y rewriting, then absl.app.run(main). A failure (an
  exception, or SystemExit with a non-zero status) must end the process within EXIT_GRACE_S."""
  define_flags()
  try:
    gin_utils.run(main)
  except SystemExit as e:
    if e.code not in (0, None):
      e.__context__ = e.__cause__ = None  # release the failed frames (and what they hold) before exiting
      sys.unraisablehook = lambda unraisable: None  # the failure is reported; objects of the failed libraries
      _force_exit_after(EXIT_GRACE_S, e.code if isinstance(e.code, int) else 1)  # must not add tracebacks now
    raise
  except BaseException:
    _force_exit_after(EXIT_GRACE_S, 1)
    raise
