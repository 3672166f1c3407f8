"""config.gin files written by runs of the earlier, flat package layout still load and build the same run."""
import os

import gin

from skip_t5x import cli, gin_utils
from skip_t5x.model.decoder_only import DecoderOnlyModel

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "config_flat_layout.gin")


def test_a_flat_layout_config_gin_still_parses_and_builds_its_run(tmp_path):
  with open(GOLDEN) as f:
    text = f.read()
  assert "import skip_t5x.models as" in text and "import skip_t5x.training as" in text  # the old module names
  cli.import_registrations()
  gin.clear_config()
  try:
    gin_utils.parse_gin([GOLDEN], extra_bindings={"MODEL_DIR": str(tmp_path)}, finalize=False)
    from skip_t5x import training  # pylint: disable=import-outside-toplevel
    spec = training.TrainSpec()
    model = gin_utils.evaluate_macro("MODEL")
  finally:
    gin.clear_config()
  assert isinstance(spec.model, DecoderOnlyModel) and isinstance(model, DecoderOnlyModel)
  config = spec.model.config
  # The values the golden file binds (tiny skip model of the time): checked against the file, not the code.
  assert (config.d_model, config.num_layers, config.head_dim, config.mlp_dim) == (64, 2, 16, 256)
  assert config.routing.routed == "layer" and config.routing.skip_ratio == 0.5
  assert spec.train_steps == 2 and spec.dataset.batch_size == 8 and spec.model_dir == str(tmp_path)
  assert dict(spec.dataset.task_feature_lengths) == {"targets": 32}
