"""Training: the run spec and program (train step, optimizer, sharded state), the loop, checkpoints, the input
pipeline, metrics logging and AOT compilation of the exact train step.

May import: skip_t5x.model (through the model API only: ``model.loss_fn``, ``model.config``), skip_t5x.parallel,
skip_t5x.data (task registry, vocabularies) and skip_t5x.gin_utils; never evaluation/, study/ or the commands.
Importing the package registers the ``train`` gin configurable (gin files say ``import skip_t5x.training``).
"""
from skip_t5x.training.loop import NonFiniteLossError, TrainResult, run, train  # noqa: F401
from skip_t5x.training.program import TrainSpec, build_program  # noqa: F401
