"""Every shipped model and run gin file parses; every model builds at tiny overrides and scores a batch; the
full-size models have the parameter counts their names promise."""
from __future__ import annotations

import functools
import glob
import os

import gin
import jax
import numpy as np
import pytest

from skip_t5x import gin_utils, parallel
from tests.training import helpers

GIN_DIR = gin_utils.PACKAGE_GIN_DIR
MODEL_FILES = sorted(os.path.relpath(p, GIN_DIR) for p in glob.glob(os.path.join(GIN_DIR, "models", "*.gin"))
                     if not p.endswith("decoder_base.gin"))
RUN_FILES = ["runs/pretrain.gin", "runs/demo.gin", "runs/infer.gin"]

# Billions of parameters promised by each paper-scale / large config (the full-size shapes, never allocated).
EXPECTED_BILLIONS = {"400m": (0.38, 0.45), "1p7b": (1.6, 1.85), "5p8b": (5.5, 6.1), "8b": (7.8, 8.3)}


def _tiny_overrides():
  kv_heads = gin.query_parameter("DecoderConfig.num_kv_heads")
  heads = gin.query_parameter("DecoderConfig.num_heads")
  return [
      "DecoderConfig.num_layers = 2", "DecoderConfig.d_model = 32", "DecoderConfig.num_heads = 4",
      f"DecoderConfig.num_kv_heads = {4 if kv_heads == heads else 2}",  # keep grouped-query attention when used
      "DecoderConfig.head_dim = 8", "DecoderConfig.mlp_dim = 64", "VOCAB_SIZE = 512",
      # Numerics and layer-stacking knobs (tested by the model's own tests) are normalised so that the files
      # share a handful of compiled programs.
      "ACTIVATION_DTYPE = 'float32'", "DecoderConfig.scan_layers = False", "DecoderConfig.remat = 'none'",
  ]


def _build_model(model_file, bindings=()):
  helpers.parse(["runs/pretrain.gin", model_file], ["MODEL_DIR = '/tmp/unused'", *bindings])
  return gin_utils.evaluate_macro("MODEL")


def test_all_model_sizes_are_shipped():
  names = {os.path.basename(f)[:-4] for f in MODEL_FILES}
  for size in ("tiny", "small", "400m", "1p7b", "5p8b", "8b"):
    assert {f"dense_{size}", f"skip_{size}"} <= names


@pytest.mark.parametrize("run_file", RUN_FILES)
def test_run_files_parse_and_list_their_required_macros(run_file):
  text = open(os.path.join(GIN_DIR, run_file)).read()
  assert "Required macros:" in text.split("\n\n")[0]
  files = [run_file] if run_file != "runs/infer.gin" else ["models/skip_tiny.gin", run_file]
  helpers.parse(files, ["MODEL_DIR = '/tmp/unused'"])
  assert gin.query_parameter("%MODEL_DIR") == "/tmp/unused"


def test_demo_uses_the_embedded_corpus_and_the_small_skip_model():
  helpers.parse(["runs/demo.gin"], ["MODEL_DIR = '/tmp/unused'"])
  assert gin.query_parameter("%MIXTURE_OR_TASK_NAME") == "embedded_lm"
  assert gin.query_parameter("%ROUTED") == "layer" and gin.query_parameter("%SKIP_RATIO") == 0.5
  assert gin.query_parameter("DecoderConfig.d_model") == 128


@functools.lru_cache(maxsize=None)
def _score_tiny(config):
  """Builds params for a tiny DecoderConfig and scores one batch (cached: equal tiny configs compile once)."""
  from skip_t5x.model.decoder_only import DecoderOnlyModel

  model = DecoderOnlyModel(config)

  def init_and_score(rng, batch):
    variables = model.get_initial_variables(rng, {"decoder_input_tokens": (2, 16)})
    return model.score_batch(parallel.strip_boxes(variables["params"]), batch)

  tokens = np.random.RandomState(0).randint(2, config.vocab_size, size=(2, 16)).astype(np.int32)
  batch = {"decoder_input_tokens": tokens, "decoder_target_tokens": tokens,
           "decoder_loss_weights": np.ones_like(tokens)}
  return np.asarray(jax.jit(init_and_score)(jax.random.key(0), batch))


@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_model_builds_at_tiny_size_and_scores(model_file):
  helpers.parse(["runs/pretrain.gin", model_file], ["MODEL_DIR = '/tmp/unused'"])
  routed = gin.query_parameter("%ROUTED")
  model = _build_model(model_file, _tiny_overrides())
  assert model.config.num_layers == 2 and model.config.d_model == 32
  assert (routed == "none") == os.path.basename(model_file).startswith("dense_")
  assert model.config.routing.enabled == (routed != "none")
  scores = _score_tiny(model.config)
  assert scores.shape == (2,)
  assert np.all(np.isfinite(scores)) and np.all(scores < 0)  # sums of log-probabilities


@pytest.mark.parametrize("size", sorted(EXPECTED_BILLIONS))
def test_full_size_parameter_counts(size):
  low, high = EXPECTED_BILLIONS[size]
  counts = {}
  for kind in ("dense", "skip"):
    model = _build_model(f"models/{kind}_{size}.gin")
    shapes = jax.eval_shape(lambda r, m=model: m.get_initial_variables(r, {"decoder_input_tokens": (1, 8)}),
                            jax.random.key(0))
    counts[kind] = parallel.param_count(shapes["params"])
    if size != "8b":
      assert model.config.mlp_dim == 8 * model.config.d_model  # the paper's 8x d_model FFN
  assert low * 1e9 <= counts["dense"] <= high * 1e9, counts
  # Routers add 2 x (d_model + 1) params per routed layer, nothing else.
  config = model.config
  assert counts["skip"] - counts["dense"] == config.num_layers * 2 * (config.d_model + 1)
