"""The baselines' gin side: ROUTING accepts every policy and refuses others by name; the dense files at matched
compute have round(L * P) layers of the skip model they are paired with, at the same width."""
import glob
import os
import re

import gin
import pytest

from skip_t5x import gin_utils
from skip_t5x.layers.routing import POLICY_CHOICES

MODELS_DIR = os.path.join(gin_utils.PACKAGE_GIN_DIR, "models")
MATCHED = sorted(os.path.basename(p) for p in glob.glob(os.path.join(MODELS_DIR, "dense_*_matched*.gin")))
SHAPE = ("d_model", "num_heads", "num_kv_heads", "head_dim", "mlp_dim", "vocab_size")


def _model(files, bindings=()):
  import skip_t5x.model.decoder_only  # noqa: F401  (registers the configurables)

  gin.clear_config()
  gin_utils.parse_gin(list(files), list(bindings), finalize=False)
  return gin_utils.evaluate_macro("MODEL")


@pytest.mark.parametrize("policy", POLICY_CHOICES)
def test_routing_macro_accepts_every_policy(policy):
  model = _model(["models/skip_tiny.gin"], [f"ROUTING = '{policy}'"])
  assert model.config.routing.policy == policy


@pytest.mark.parametrize("binding,culprit", [("ROUTING = 'lottery'", "ROUTING='lottery'"),
                                             ("INFERENCE_SKIP_RATIO = 1.0", "INFERENCE_SKIP_RATIO=1.0")])
def test_bad_routing_macros_are_refused_by_name(binding, culprit):
  with pytest.raises(gin_utils.GinConfigError, match=re.escape(culprit)):
    _model(["models/skip_tiny.gin"], [binding])


def test_gin_routing_choices_are_the_configs_policies():
  with pytest.raises(gin_utils.GinConfigError) as error:
    _model(["models/skip_tiny.gin"], ["ROUTING = 'nope'"])
  assert all(repr(p) in str(error.value) for p in POLICY_CHOICES)


def test_matched_compute_files_exist_for_the_cpu_sizes():
  assert {"dense_tiny_matched.gin", "dense_small_matched.gin", "dense_small_matched_p25.gin"} <= set(MATCHED)


@pytest.mark.parametrize("dense_file", MATCHED)
def test_matched_dense_model_has_round_l_times_p_layers(dense_file):
  text = open(os.path.join(MODELS_DIR, dense_file)).read()
  pair = re.search(r"^# Pair: (models/skip_\w+\.gin)", text, re.MULTILINE)
  assert pair, f"{dense_file} names no skip model it is paired with"
  skip = _model([pair.group(1)]).config
  dense = _model([f"models/{dense_file}"]).config
  full_depth = _model([f"models/{dense_file.split('_matched')[0]}.gin"]).config
  assert not dense.routing.enabled and skip.routing.enabled
  assert dense.num_layers == round(skip.num_layers * skip.routing.target_density), dense_file
  assert full_depth.num_layers == skip.num_layers  # the full-depth dense model: the skip model without routers
  for field in SHAPE:
    assert getattr(dense, field) == getattr(skip, field) == getattr(full_depth, field), field
