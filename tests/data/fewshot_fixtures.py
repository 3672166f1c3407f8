"""Fixed raw examples for every TFDS-backed 1-shot task, served through tfds.testing.mock_data.

FIXTURES[task] = {'eval': [...], 'shot': [...]} in the builder's feature structure, with the real datasets' value
conventions (fixtures_nlg.py, fixtures_nlu.py, fixtures_superglue.py); GOLDEN[task] lists the items expected from
them. Fields a prompt does not use may be left out (`complete` fills them with empty values); a field the builder
does not have is an error, and the TFDS feature spec checks every example's structure and types.
"""
import numpy as np
import tensorflow as tf

from skip_t5x.data import fewshot_tasks
from tests.data import fixtures_nlg, fixtures_nlu, fixtures_superglue

FIXTURES = {**fixtures_nlg.ROWS, **fixtures_nlu.ROWS, **fixtures_superglue.ROWS}
GOLDEN = {**fixtures_nlg.GOLDEN, **fixtures_nlu.GOLDEN, **fixtures_superglue.GOLDEN}


def complete(example, spec):
  """Fills fields missing from `example` with empty values of the spec's dtype and shape."""
  if isinstance(spec, dict):
    example = example or {}
    unknown = sorted(set(example) - set(spec))
    if unknown:
      raise KeyError(f"fixture fields {unknown} are not in the builder's features {sorted(spec)}")
    return {k: complete(example.get(k), s) for k, s in spec.items()}
  if isinstance(spec, tf.RaggedTensorSpec):
    return tf.ragged.constant(example or [], dtype=spec.dtype, ragged_rank=spec.ragged_rank)
  if example is not None:
    return np.asarray(example, dtype=object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype)
  if spec.shape.rank and spec.shape[0] is None:
    return np.zeros([0] * spec.shape.rank, dtype=object if spec.dtype == tf.string else
                    spec.dtype.as_numpy_dtype)
  return b"" if spec.dtype == tf.string else spec.dtype.as_numpy_dtype(0)


def _fixture_for(builder, split: str):
  full = builder.name + ("/" + builder.builder_config.name if builder.builder_config else "")
  for spec in fewshot_tasks.SUITE.values():
    if spec.tfds_name.split(":")[0] == full:
      fixture = FIXTURES[spec.name]
      if split == spec.eval_split:
        return fixture["eval"]
      if split == spec.shot_split:
        return fixture["shot"] if fixture["shot"] is not None else fixture["eval"]
  raise KeyError(f"no fixture for {full} split {split}")


def as_dataset(self, split, **unused_kwargs):
  """tfds.testing.mock_data(as_dataset_fn=...): the fixture examples of the builder's split."""
  spec = self.info.features.get_tensor_spec()
  examples = [complete(e, spec) for e in _fixture_for(self, str(split))]
  return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=spec)
