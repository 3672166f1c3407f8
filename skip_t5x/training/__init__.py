"""Training: the run spec and program (train step, optimizer, sharded state), the loop, checkpoints (with the
input position saved beside them and a check that they hold the requested model), the input pipeline, the model
dir's lock and config history, metrics logging and AOT compilation of the exact train step.

May import: skip_t5x.model (through the model API only: ``model.loss_fn``, ``model.config``), skip_t5x.parallel,
skip_t5x.data (task registry, vocabularies) and skip_t5x.gin_utils; never evaluation/, study/ or the commands.
Importing the package registers the ``train`` gin configurable (gin files say ``import skip_t5x.training``).
"""
from skip_t5x.training.loop import NonFiniteLossError, TrainResult, run, train  # noqa: F401
from skip_t5x.training.program import TrainSpec, build_program  # noqa: F401
from skip_t5x.training.checkpoints import CheckpointWriteError, CorruptCheckpointError
from skip_t5x.training.run_lock import RunDirError

# What the train command reports as one 'error:' line (exit status 2) rather than a traceback: a refused or failed
# run whose message says what to do (a ValueError, e.g. another model in the model dir, is reported anyway).
FAULTS = (NonFiniteLossError, CorruptCheckpointError, CheckpointWriteError, RunDirError, OSError)
