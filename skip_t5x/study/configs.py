"""Gin, one configuration at a time: the study file, each arm's training config, a finished run's config.gin.

gin's state is global, so every parse here starts from a cleared config and clears it again when done; the
study process holds no gin bindings between parses. Each arm's config is parsed exactly as its training command
will parse it (same files, same overrides) and built into a TrainSpec, so a mistyped macro, a missing file or an
invalid model is refused before any run starts.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Iterator, List, Mapping, Optional, Sequence

import gin

from skip_t5x import gin_utils
from skip_t5x.study import files
from skip_t5x.study import spec as spec_lib


def import_registrations() -> None:
  """The modules whose import registers the gin configurables and seqio tasks that run configs use."""
  # pylint: disable=g-import-not-at-top,unused-import
  import skip_t5x.data.tasks  # noqa: F401
  import skip_t5x.model.decoder_only  # noqa: F401
  import skip_t5x.training  # noqa: F401


def binding_lines(bindings: Mapping[str, Any]) -> List[str]:
  return [f"{name} = {spec_lib.gin_value(value)}" for name, value in bindings.items()]


@contextlib.contextmanager
def parsed(gin_files: Sequence[str], bindings: Sequence[str] = (), search_paths: Sequence[str] = (),
           extra_bindings: Optional[Mapping[str, Any]] = None) -> Iterator[None]:
  """A clean gin config holding `gin_files` then `bindings` (validated), cleared again on exit."""
  gin.clear_config()
  try:
    gin_utils.parse_gin(gin_files, bindings, search_paths, extra_bindings, finalize=False)
    yield
  finally:
    gin.clear_config()


def load_study(gin_files: Sequence[str], bindings: Sequence[str] = (), search_paths: Sequence[str] = ()
               ) -> spec_lib.Study:
  """The validated Study that the gin files (gin/studies/*.gin) and bindings define."""
  with parsed(gin_files, bindings, search_paths):
    study = spec_lib.Study()
  return study.validate()


def model_depth(study: spec_lib.Study, arm: spec_lib.StudyArm, search_paths: Sequence[str] = ()) -> int:
  """num_layers of the arm's model file, as the study's run files and that file define it."""
  with parsed([*study.train_gin_files, arm.model], (), search_paths, {"MODEL_DIR": "/unused"}):
    return int(gin.query_parameter(spec_lib.NUM_LAYERS_BINDING))


def resolve_arms(study: spec_lib.Study, search_paths: Sequence[str] = ()) -> List[spec_lib.StudyArm]:
  """The selected arms with each `depth` turned into a num_layers override."""
  import_registrations()
  return [arm.with_num_layers(model_depth(study, arm, search_paths)) if arm.depth is not None else arm
          for arm in study.expanded_arms()]


def run_train_spec(study: spec_lib.Study, run: spec_lib.ArmRun, search_paths: Sequence[str] = ()):
  """The TrainSpec the run's training command will build: parsed, constructed and validated (nothing compiled)."""
  from skip_t5x.training import program  # pylint: disable=g-import-not-at-top

  import_registrations()
  files = [*study.train_gin_files, run.arm.model]
  try:
    with parsed(files, binding_lines(study.train_bindings(run)), search_paths, {"MODEL_DIR": run.run_dir}):
      train_spec = program.TrainSpec().validate()
  except (ValueError, TypeError) as e:
    raise ValueError(f"arm {run.arm.name!r} (seed {run.seed}): {e}") from e
  program.check_data(train_spec.dataset, train_spec.model)
  return train_spec


def trained_spec(run_dir: str, bindings: Optional[Mapping[str, Any]] = None):
  """The TrainSpec of a finished run, from RUN/config.gin (the operative config training wrote) and `bindings`.

  The file is read through gfile and parsed from a local copy, so run directories on gs:// work too.
  """
  from skip_t5x.training import program  # pylint: disable=g-import-not-at-top

  import_registrations()
  config = os.path.join(run_dir, gin_utils.TRAIN_CONFIG)
  if not files.exists(config):
    raise FileNotFoundError(f"{config} does not exist: {run_dir} is not a finished training run")
  with tempfile.TemporaryDirectory(prefix="skip_t5x_study_") as local_dir:
    local = files.write_text(os.path.join(local_dir, gin_utils.TRAIN_CONFIG), files.read_text(config))
    with parsed([local], binding_lines(bindings or {}), (), {"MODEL_DIR": run_dir}):
      return program.TrainSpec().validate()
