"""config.gin and config_history/: bindings are diffed as gin text, and each run start keeps its config."""
from __future__ import annotations

import os

from skip_t5x.training import run_config

OLD = """import skip_t5x.training

# Macros:
# ==============================================================================
MODEL_DIR = '/a/run'
SKIP_RATIO = 0.5
TASK_FEATURE_LENGTHS = \\
    {'targets': 32}
TRAIN_STEPS = 4

# Parameters for MODEL/DecoderConfig:
# ==============================================================================
MODEL/DecoderConfig.d_model = 64
"""


def test_bindings_parse_macros_scoped_bindings_and_continued_values():
  assert run_config.bindings(OLD) == {"MODEL_DIR": "'/a/run'", "SKIP_RATIO": "0.5",
                                      "TASK_FEATURE_LENGTHS": "\\ {'targets': 32}", "TRAIN_STEPS": "4",
                                      "MODEL/DecoderConfig.d_model": "64"}


def test_changed_bindings_name_each_change_but_not_the_location():
  new = (OLD.replace("SKIP_RATIO = 0.5", "SKIP_RATIO = 0.25").replace("'/a/run'", "'/b/run'")
         .replace("MODEL/DecoderConfig.d_model = 64\n", "") + "train.seed = 1\n")
  assert run_config.changed_bindings(OLD, new) == [
      "MODEL/DecoderConfig.d_model: 64 -> (unset)", "SKIP_RATIO: 0.5 -> 0.25", "train.seed: (unset) -> 1"]
  assert run_config.changed_bindings(OLD, OLD.replace("'/a/run'", "'/b/run'")) == []


def test_commit_keeps_every_run_config_and_an_earlier_unrecorded_one(tmp_path):
  model_dir = str(tmp_path)
  with open(os.path.join(model_dir, "config.gin"), "w") as f:
    f.write(OLD)  # written before histories were kept
  assert run_config.describe_changes(model_dir, OLD) is None
  new = OLD.replace("TRAIN_STEPS = 4", "TRAIN_STEPS = 8")
  assert run_config.describe_changes(model_dir, new) == (
      f"The config differs from {model_dir}/config.gin in 1 binding(s): TRAIN_STEPS: 4 -> 8")
  run_config.commit(model_dir, 4, new)
  run_config.commit(model_dir, 8, new)
  history_dir = os.path.join(model_dir, run_config.HISTORY_DIR)
  names = sorted(os.listdir(history_dir))
  assert [n.split("-")[1] for n in names] == ["4", "8", "earlier"]
  texts = {n.split("-")[1]: open(os.path.join(history_dir, n)).read() for n in names}
  assert texts == {"earlier": OLD, "4": new, "8": new}
  assert open(os.path.join(model_dir, "config.gin")).read() == new
