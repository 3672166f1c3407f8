"""Evaluation: the seqio runner (score / predict over the sharded model), `evaluate()`, its summary (scores, chance,
realized density, FLOPs per token) and prompt continuation (`infer()`).

May import: skip_t5x.model (through the model API), skip_t5x.parallel, skip_t5x.data, skip_t5x.training's
checkpoints (to restore what training saved) and skip_t5x.gin_utils; never study/ or the commands.
Importing the package registers the ``evaluate`` and ``infer`` gin configurables.
"""
from skip_t5x.evaluation import evaluate, generation  # noqa: F401  (modules; `evaluate.evaluate` is the function)
