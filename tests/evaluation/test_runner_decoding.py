"""The runner's sharded, batched predict_fn generates what the model gives for each row alone, with the prefill path
by default (equal to token-by-token), and for the decode length each task declares."""
import jax
import numpy as np
import pytest
import tensorflow as tf

from skip_t5x import parallel
from skip_t5x.data import fewshot_tasks
from skip_t5x.evaluation import runner as runner_lib
from skip_t5x.model.decoder_only import DecoderOnlyModel
from skip_t5x.model.decoding import DecodeConfig
from tests.model_helpers import VOCAB, init_params, set_routers, tiny_config

WIDTH, DECODE = 10, 4


def prefix_lm_dataset(num_examples: int) -> tf.data.Dataset:
  """Enumerated PrefixLM features with ragged prompts (lengths 2 .. WIDTH)."""
  rng = np.random.default_rng(0)
  rows = []
  for i in range(num_examples):
    length = 2 + i % (WIDTH - 1)
    tokens = np.zeros(WIDTH, np.int32)
    tokens[1:length] = rng.integers(2, VOCAB, length - 1)  # BOS (0) first
    causal = (np.arange(WIDTH) < length).astype(np.int32)
    rows.append({"decoder_input_tokens": tokens, "decoder_causal_attention": causal,
                 "decoder_target_tokens": np.roll(tokens, -1), "decoder_loss_weights": 1 - causal})
  stacked = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
  return tf.data.Dataset.from_tensor_slices(stacked).enumerate()


def test_predict_fn_matches_direct_calls_and_each_tasks_decode_length():
  model = DecoderOnlyModel(tiny_config(routed="layer", dispatch="gather", capacity_factor=0.8))
  params = set_routers(init_params(model), kernel_scale=0.4, execute_bias=0.3)
  mesh_config = parallel.MeshConfig(data=8, fsdp=1, model=1)
  mesh, rules = parallel.create_mesh(mesh_config), mesh_config.rules()
  dataset = prefix_lm_dataset(10)  # two batches of 8, the last one padded
  runner = runner_lib.ModelRunner(model, params, mesh, rules, batch_size=8, max_decode_length=DECODE, eos_id=-1)
  assert runner.decode_config == DecodeConfig()  # prefill by default
  predicted = runner.predict_fn(dataset)
  assert [i for i, _ in predicted] == list(range(10))
  reference = runner_lib.ModelRunner(model, params, mesh, rules, batch_size=8, max_decode_length=DECODE, eos_id=-1,
                                     decode_config=DecodeConfig(method="token_by_token")).predict_fn(dataset)
  np.testing.assert_array_equal(np.stack([t for _, t in predicted]), np.stack([t for _, t in reference]))
  rows = [features for _, features in dataset.as_numpy_iterator()]
  row_batch = lambda i: {k: np.asarray(rows[i][k])[None] for k in ("decoder_input_tokens", "decoder_causal_attention")}
  direct = jax.jit(lambda p, b, n: model.predict_batch(p, b, max_decode_length=n, eos_id=-1), static_argnums=2)
  for index in (0, 7, 9):  # each row alone, unsharded
    np.testing.assert_array_equal(predicted[index][1], np.asarray(direct(params, row_batch(index), DECODE))[0])

  runner.use_task_decode_lengths({"short_task": dataset}, {"short_task": 2})
  short = runner.predict_fn(dataset)
  np.testing.assert_array_equal(short[3][1], np.asarray(direct(params, row_batch(3), 2))[0])
  assert short[3][1].shape == (2,) and runner.predict_fn(prefix_lm_dataset(2))[0][1].shape == (DECODE,)


def test_task_decode_lengths_are_the_declared_ones_capped(monkeypatch):
  declared = {"lambada": 16, "squad": 48}
  monkeypatch.setattr(fewshot_tasks, "max_decode_length", lambda name, default: declared.get(name, default),
                      raising=False)
  assert runner_lib.task_decode_lengths(["lambada", "squad", "boolq"], 32) == {"lambada": 16, "squad": 32,
                                                                              "boolq": 32}
  monkeypatch.delattr(fewshot_tasks, "max_decode_length")
  assert runner_lib.task_decode_lengths(["lambada"], 32) == {}  # the data side declares none: one length


@pytest.mark.parametrize("bad", [DecodeConfig(method="beam"), DecodeConfig(beam_size=0)])
def test_runner_rejects_a_bad_decode_config(bad):
  model = DecoderOnlyModel(tiny_config(routed="layer"))
  mesh_config = parallel.MeshConfig(data=8, fsdp=1, model=1)
  with pytest.raises(ValueError, match="DecodeConfig"):
    runner_lib.ModelRunner(model, None, parallel.create_mesh(mesh_config), mesh_config.rules(), batch_size=8,
                           max_decode_length=2, eos_id=1, decode_config=bad)


@pytest.mark.parametrize("run_file,beam_size", [("runs/eval.gin", 4), ("runs/demo_eval.gin", 1)])
def test_eval_gin_files_set_the_beam_size_the_runner_decodes_with(run_file, beam_size, tmp_path):
  import gin  # pylint: disable=import-outside-toplevel

  from skip_t5x import cli, gin_utils  # pylint: disable=import-outside-toplevel

  cli.import_registrations()
  gin.clear_config()
  try:
    gin_utils.parse_gin(["models/skip_tiny.gin", run_file], [], extra_bindings={"MODEL_DIR": str(tmp_path)},
                        finalize=False)
    config = DecodeConfig()
  finally:
    gin.clear_config()
  assert config == DecodeConfig(beam_size=beam_size)  # prefill, with the run's beam size
