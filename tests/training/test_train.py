"""End-to-end training in this process: the tiny skip model on 8 fake devices, a (data 4, model 2) mesh.

One module-scoped run (8 steps, checkpoints at 4 and 8) feeds several tests: loss falls, metrics and TensorBoard
files, restore onto another mesh, the NaN guard, inference.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import gin
import jax
import numpy as np
import pytest
import tensorflow as tf

from skip_t5x.training import checkpoints
from skip_t5x import gin_utils
from skip_t5x.training import input_pipeline
from skip_t5x.training import metrics_logging
from skip_t5x.training import optimizers
from skip_t5x import parallel
from skip_t5x.training import state as train_state
from skip_t5x.training import step as train_step
from skip_t5x import training
from tests.training import helpers
from tests.training.conftest import exclusive
from tests.training.conftest import shared_dir
from tests.training.conftest import subprocess_env

STEPS = 12  # checkpoints at 4, 8 and 12


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_corpus, compilation_cache_dir):
  """(model_dir, summary) of one 12-step run, trained once per session and shared by the xdist workers.

  Tests only read it (or copy it before changing anything).
  """
  base = shared_dir(tmp_path_factory, "trained_run")
  model_dir = str(base / "run")
  summary_path = base / "summary.json"
  with exclusive(base / "lock"):
    if not summary_path.exists():
      result = helpers.train_in_process(model_dir, steps=STEPS, period=4, log_every=1)
      summary_path.write_text(json.dumps(
          {"step": result.step, "resumed_from": result.resumed_from, "preempted": result.preempted}))
  return model_dir, json.loads(summary_path.read_text())


def _abstract_state(model_dir, mesh_shape):
  """Abstract TrainState laid out on a (data, fsdp, model) mesh, from the run's own gin config."""
  gin.clear_config()
  gin_utils.parse_gin([os.path.join(model_dir, "config.gin")], finalize=False)
  model = gin_utils.evaluate_macro("MODEL")
  config = optimizers.OptimizerConfig()  # gin-bound as in the run
  tx, _ = optimizers.make_optimizer(config, STEPS)
  mesh = parallel.create_mesh(parallel.MeshConfig(*mesh_shape))
  rules = parallel.logical_axis_rules()
  abstract, _ = train_state.abstract_train_state(model, tx, mesh, rules, {"decoder_input_tokens": (8, 32)})
  return model, mesh, rules, abstract


def _first_batch():
  config = input_pipeline.DatasetConfig(helpers.TINY_TASK, {"targets": 32}, batch_size=8)
  return next(input_pipeline.batch_iterator(config))


def test_tiny_skip_model_trains_on_4x2_mesh(trained_run):
  model_dir, summary = trained_run
  assert summary == {"step": STEPS, "resumed_from": None, "preempted": False}
  records = metrics_logging.read_metrics(model_dir)
  assert [r["step"] for r in records] == list(range(1, STEPS + 1))
  losses = [r["loss"] for r in records]
  assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.5, losses
  last = records[-1]
  for key in ("accuracy", "cross_entropy", "router/aux_loss", "router/z_loss", "router/density",
              "router/density/layer_00", "router/density/layer_01", "learning_rate", "tokens_per_sec",
              "tflops_per_sec_per_device", "grad_norm"):
    assert key in last, key
  assert 0.0 < last["router/density/layer_00"] <= 1.0
  assert "mfu" not in last  # no known peak on CPU
  # TensorBoard: one 'loss' scalar per step, equal to the JSON values.
  events = glob.glob(os.path.join(model_dir, "tensorboard", "train", "events.out.tfevents.*"))
  assert events
  tb_losses = {}
  for path in events:
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "loss":
          tb_losses[event.step] = float(tf.make_ndarray(value.tensor))
  assert sorted(tb_losses) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([tb_losses[s] for s in range(1, STEPS + 1)], losses, rtol=1e-6)
  assert os.path.exists(os.path.join(model_dir, "config.gin"))
  assert checkpoints.Checkpointer(model_dir).all_steps() == [4, 8, 12]


def test_relative_model_dir_saves_and_restores(trained_run, tmp_path, monkeypatch):
  """`--model_dir=runs/demo` (relative, as `make run` passes it): orbax itself only takes absolute paths."""
  model_dir, _ = trained_run
  _, _, _, abstract = _abstract_state(model_dir, (4, 1, 2))
  state, meta = checkpoints.Checkpointer(model_dir).restore_latest(abstract)
  monkeypatch.chdir(tmp_path)
  ckpt = checkpoints.Checkpointer(os.path.join("runs", "demo"))
  try:
    assert ckpt.save(state, data_position=meta["data_position"], batch_size=meta["batch_size"], force=True)
    ckpt.wait()
  finally:
    ckpt.close()
  assert os.path.isdir(tmp_path / "runs" / "demo" / "checkpoints" / str(STEPS))
  params, step = checkpoints.restore_params(os.path.join("runs", "demo"), abstract.params)
  assert step == STEPS
  for a, b in zip(jax.tree.leaves(jax.device_get(params)), jax.tree.leaves(jax.device_get(state.params))):
    np.testing.assert_array_equal(a, b)


def test_params_are_sharded_by_the_logical_rules(trained_run):
  model_dir, _ = trained_run
  _, mesh, _, abstract = _abstract_state(model_dir, (4, 1, 2))
  state, meta = checkpoints.Checkpointer(model_dir).restore_latest(abstract)
  assert meta["step"] == STEPS and meta["data_position"] == STEPS and int(state.step) == STEPS
  specs = {"/".join(str(getattr(k, "key", k)) for k in path): leaf.sharding.spec
           for path, leaf in jax.tree_util.tree_leaves_with_path(state.params)}
  mlp_specs = [spec for name, spec in specs.items() if "mlp" in name.lower() and len(spec) == 2]
  assert mlp_specs and all("model" in tuple(spec) for spec in mlp_specs), specs
  router_specs = [spec for name, spec in specs.items() if "router" in name.lower()]
  assert router_specs and all("model" not in tuple(spec) for spec in router_specs)


def test_restore_onto_an_8x1_mesh(trained_run):
  model_dir, _ = trained_run
  batch = _first_batch()
  restored = {}
  for shape in [(4, 1, 2), (8, 1, 1), (1, 8, 1)]:
    model, mesh, rules, abstract = _abstract_state(model_dir, shape)
    state, _ = checkpoints.Checkpointer(model_dir).restore_latest(abstract)
    leaves = jax.tree.leaves(state.params)
    assert all(leaf.sharding.mesh.shape == mesh.shape for leaf in leaves)
    values = [np.asarray(leaf) for leaf in leaves]
    loss = None
    if shape != (1, 8, 1):
      with parallel.mesh_context(mesh, rules):
        metrics = jax.jit(train_step.eval_loss_step(model))(state.params,
                                                          parallel.make_global_batch(batch, mesh, rules))
        loss = float(metrics["loss"])
    else:  # fsdp over 8 devices: every device holds 1/8 of each [vocab, embed] embedding (embed is sharded)
      embed = [leaf for leaf in leaves if leaf.ndim == 2 and leaf.shape[0] == 2048]
      assert embed and all(s.data.size == embed[0].size // 8 for s in embed[0].addressable_shards)
    restored[shape] = (values, loss)
  reference_values, reference_loss = restored[(4, 1, 2)]
  for shape in [(8, 1, 1), (1, 8, 1)]:
    for a, b in zip(reference_values, restored[shape][0]):
      np.testing.assert_array_equal(a, b)
  assert restored[(8, 1, 1)][1] == pytest.approx(reference_loss, rel=1e-5)


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(trained_run, tmp_path):
  source_dir, _ = trained_run
  model_dir = str(tmp_path / "run")
  shutil.copytree(source_dir, model_dir)
  _, _, _, abstract = _abstract_state(model_dir, (4, 1, 2))
  before = [np.asarray(x) for x in jax.tree.leaves(checkpoints.Checkpointer(model_dir).restore_latest(abstract)[0])]
  gin.clear_config()
  huge_lr = ["LEARNING_RATE = 1e38"]  # the first update overflows the params to inf
  with pytest.raises(training.NonFiniteLossError,
                     match=rf"non-finite .* at step {STEPS + 1} .* last good checkpoint is step {STEPS}"):
    helpers.train_in_process(model_dir, steps=STEPS + 2, period=1, log_every=1, extra=huge_lr)
  ckpt = checkpoints.Checkpointer(model_dir)
  assert ckpt.all_steps() == [4, 8, 12]
  after = [np.asarray(x) for x in jax.tree.leaves(ckpt.restore_latest(abstract)[0])]
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a, b)
  # 'skip': the bad updates are dropped and training goes on; params stay those of the last good step.
  result = helpers.train_in_process(model_dir, steps=STEPS + 2, period=1, log_every=1,
                                    extra=huge_lr + ["train.on_nonfinite = 'skip'"])
  assert result.step == STEPS + 2 and result.skipped_updates == 2
  assert metrics_logging.read_metrics(model_dir)[-1]["update_ok"] == 0.0
  final, _ = checkpoints.restore_params(model_dir, abstract.params)
  good, _ = checkpoints.restore_params(model_dir, abstract.params, step=STEPS)
  for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(good)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_corrupt_latest_checkpoint_is_reported_and_the_previous_one_used(trained_run, tmp_path, capsys):
  source_dir, _ = trained_run
  model_dir = str(tmp_path / "run")
  shutil.copytree(source_dir, model_dir)
  ckpt_dir = checkpoints.checkpoint_dir(model_dir)
  for root, _, files in os.walk(os.path.join(ckpt_dir, str(STEPS), "params")):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  os.makedirs(os.path.join(ckpt_dir, f"{STEPS + 4}.orbax-checkpoint-tmp-1234"))  # an interrupted save
  _, _, _, abstract = _abstract_state(model_dir, (4, 1, 2))
  state, meta = checkpoints.Checkpointer(model_dir).restore_latest(abstract)
  assert meta["step"] == int(state.step) == STEPS - 4
  out = capsys.readouterr().out
  assert f"checkpoint step {STEPS} in {ckpt_dir} is corrupt or incomplete" in out
  assert "falling back to the previous checkpoint" in out
  # Moved aside so that a new save at that step does not collide; the previous ones are untouched.
  assert checkpoints.Checkpointer(model_dir).all_steps() == [4, 8]
  assert any(n.startswith(f"{STEPS}.corrupt-") for n in os.listdir(ckpt_dir))


def test_initial_checkpoint_path_seeds_a_new_run(trained_run, tmp_path):
  source_dir, _ = trained_run
  straight = metrics_logging.read_metrics(source_dir)
  result = helpers.train_in_process(str(tmp_path / "run"), steps=1, extra=[
      f"CheckpointConfig.initial_checkpoint_path = '{source_dir}'"])
  assert result.resumed_from is None and result.step == 1
  first = metrics_logging.read_metrics(str(tmp_path / "run"))[0]
  # Starts from the trained params (a fresh init starts near ln(vocab) ~ 7.6), with a fresh optimizer.
  assert first["loss"] < straight[0]["loss"] - 1.0
  assert first["loss"] == pytest.approx(straight[-1]["loss"], abs=1.0)


class _CompileCounter:
  def __init__(self):
    self.count = 0

  def __call__(self, event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
      self.count += 1


@pytest.mark.parametrize("bindings, message", [
    (["MESH_DATA = 3", "MESH_MODEL = 1"], r"mesh shape \{'data': 3, 'fsdp': 1, 'model': 1\} has 3 devices but 8"),
    (["BATCH_SIZE = 6"], r"BATCH_SIZE=6 .*not divisible by the data-parallel mesh size 4"),
    (["RoutingConfig.capacity_factor = 0.0"], r"RoutingConfig.capacity_factor=0.0"),
    (["RoutingConfig.skip_ratio = 1.5"], r"RoutingConfig.skip_ratio=1.5"),
    (["MIXTURE_OR_TASK_NAME = 'no_such_task'"], r"MIXTURE_OR_TASK_NAME='no_such_task' is not a registered"),
    (["train.on_nonfinite = 'ignore'"], r"train.on_nonfinite='ignore'"),
    (["VOCAB_SIZE = 200"], r"VOCAB_SIZE=200 is smaller than the vocabulary of 'trainer_test_tiny_lm' \(259 ids\)"),
])
def test_bad_inputs_fail_before_any_compile(tmp_path, tiny_corpus, bindings, message):
  counter = _CompileCounter()
  jax.monitoring.register_event_duration_secs_listener(counter)
  try:
    with pytest.raises(ValueError, match=message):
      helpers.train_in_process(str(tmp_path / "run"), extra=bindings)
  finally:
    jax.monitoring.unregister_event_duration_listener(counter)
  assert counter.count == 0
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


class _BigramLM:
  """A small real language model (embedding -> logits) following the DecoderOnlyModel interface, so that the
  trainer's accumulation can be checked exactly without the routers' Gumbel noise."""

  def __init__(self, vocab=64, dim=16):
    import flax.linen as nn

    class Net(nn.Module):
      @nn.compact
      def __call__(self, tokens):
        embed = self.param("embed", nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed")),
                           (vocab, dim))
        out = self.param("out", nn.with_logical_partitioning(nn.initializers.normal(0.1), ("embed", "vocab")),
                         (dim, vocab))
        return embed[tokens] @ out  # [batch, length, vocab]

    self.module = Net()

  def get_initial_variables(self, rng, input_shapes):
    return self.module.init(rng, np.ones(input_shapes["decoder_input_tokens"], np.int32))

  def loss_fn(self, params, batch, dropout_rng):
    logits = self.module.apply({"params": params}, batch["decoder_input_tokens"])
    weights = batch["decoder_loss_weights"].astype(np.float32)
    log_probs = jax.nn.log_softmax(logits)
    nll = -jax.numpy.take_along_axis(log_probs, batch["decoder_target_tokens"][..., None], -1)[..., 0]
    num_tokens = weights.sum()
    loss = (nll * weights).sum() / num_tokens
    return loss, {"loss": loss, "num_tokens": num_tokens}


def test_gradient_accumulation_matches_the_full_batch():
  model = _BigramLM()
  tx, schedule = optimizers.make_optimizer(optimizers.OptimizerConfig(
      name="adamw", peak_learning_rate=0.01, schedule="constant", warmup_steps=1), 10)
  mesh = parallel.create_mesh(parallel.MeshConfig(4, 1, 2))
  rules = parallel.logical_axis_rules()
  tokens = np.random.RandomState(0).randint(1, 64, size=(8, 16)).astype(np.int32)
  batch = {"decoder_input_tokens": tokens, "decoder_target_tokens": np.roll(tokens, -1, axis=1),
           "decoder_loss_weights": np.ones_like(tokens)}
  state, shardings = train_state.init_train_state(model, tx, mesh, rules, {"decoder_input_tokens": (4, 16)},
                                              jax.random.key(0))
  initial = jax.tree.map(np.asarray, state)
  outputs = {}
  for microbatches in (1, 2, 4):
    step = train_step.jit_train_step(train_step.make_train_step(model, tx, schedule, microbatches), shardings, mesh,
                                  rules)
    with parallel.mesh_context(mesh, rules):
      start = jax.device_put(initial, shardings)
      new_state, metrics = step(start, parallel.make_global_batch(batch, mesh, rules), jax.random.key(1))
    outputs[microbatches] = (train_step.host_metrics(metrics), jax.tree.map(np.asarray, new_state.params))
  reference_metrics, reference_params = outputs[1]
  assert reference_metrics["num_tokens"] == 8 * 16
  for microbatches in (2, 4):
    metrics, params = outputs[microbatches]
    assert metrics["num_tokens"] == 8 * 16  # summed over microbatches
    assert metrics["loss"] == pytest.approx(reference_metrics["loss"], rel=1e-6)
    assert metrics["grad_norm"] == pytest.approx(reference_metrics["grad_norm"], rel=1e-5)
    for a, b in zip(jax.tree.leaves(reference_params), jax.tree.leaves(params)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(jax.tree.leaves(initial.params)[0], jax.tree.leaves(params)[0])  # it did update


def test_infer_continues_prompts_from_the_checkpoint(trained_run):
  from skip_t5x import infer as infer_entry
  from skip_t5x.evaluation import generation as inference

  model_dir, _ = trained_run
  files = gin_utils.train_config_first(model_dir, [infer_entry.INFER_GIN], use_train_config=True)
  assert files[0] == os.path.join(model_dir, "config.gin") and files[1] == "runs/infer.gin"
  gin_utils.parse_gin(files, ["vocabulary.kind = 'byte'", "infer.max_decode_length = 8"],
                      extra_bindings={"MODEL_DIR": model_dir}, finalize=False)
  results = inference.infer(prompts=("the quick", "a router"))
  again = inference.infer(prompts=("the quick", "a router"))
  assert [r["tokens"] for r in results] == [r["tokens"] for r in again]  # greedy is deterministic
  for r in results:
    assert r["step"] == STEPS
    assert 0 < len(r["tokens"]) <= 8
    assert set(r["module_density"]) == {"layer_00", "layer_01"}
    assert all(0.0 <= v <= 1.0 for v in r["module_density"].values())
  text = inference.format_results(results)
  assert "'the quick' ->" in text and "executed share per routed module" in text


def _cli(model_dir, tmp_path, steps, period):
  """The README-style command line of a tiny run (async checkpoints), as a subprocess argv."""
  task_gin = tmp_path / "tiny_task.gin"
  task_gin.write_text("import tests.training.tiny_task\n")
  bindings = helpers.tiny_run_bindings(model_dir, steps=steps, period=period, log_every=1, async_save=True)
  flags = [f"--gin.{b.split(' = ', 1)[0]}={b.split(' = ', 1)[1]}" for b in bindings[1:]]  # MODEL_DIR: --model_dir
  return [sys.executable, "-m", "skip_t5x.train", "--gin_file=runs/pretrain.gin",
          "--gin_file=models/skip_tiny.gin", f"--gin_file={task_gin}", f"--model_dir={model_dir}", *flags]


def _wait_for(predicate, process, timeout=240.0, what=""):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    if process.poll() is not None:
      raise AssertionError(f"process exited (rc {process.returncode}) before {what}")
    time.sleep(0.02)
  process.kill()
  raise AssertionError(f"timed out waiting for {what}")


class _LateSigtermGuard:
  """Catches a SIGTERM that arrives outside train() (so it can fail the test instead of killing pytest)."""

  def __init__(self):
    self.late = False

  def __enter__(self):
    self._previous = signal.signal(signal.SIGTERM, self._record)
    return self

  def _record(self, signum, frame):
    self.late = True

  def __exit__(self, *exc):
    signal.signal(signal.SIGTERM, self._previous)


@pytest.mark.slow
def test_resume_is_exact_after_sigkill_and_sigterm(trained_run, tmp_path, tiny_corpus, compilation_cache_dir):
  """SIGKILL a training process mid-run; resume it here and send this process a real SIGTERM (the trainer saves
  and returns, i.e. the command exits 0); resume again to the end. Every step's loss equals the uninterrupted
  run's (trained_run: same config, data, mesh)."""
  straight_dir, _ = trained_run
  straight = {r["step"]: r["loss"] for r in metrics_logging.read_metrics(straight_dir)}
  model_dir = str(tmp_path / "run")
  argv = _cli(model_dir, tmp_path, steps=STEPS, period=2)

  # 1. A real process, killed with SIGKILL once checkpoint 2 is committed and step 3 is logged.
  killed = subprocess.Popen(argv, cwd=helpers.REPO, env=subprocess_env(tiny_corpus, compilation_cache_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    _wait_for(lambda: checkpoints.latest_step(model_dir) is not None and any(
        r["step"] >= 3 for r in metrics_logging.read_metrics(model_dir)), killed, what="step 3 and checkpoint 2")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
  finally:
    if killed.poll() is None:
      killed.kill()
  assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
  killed_at = max(r["step"] for r in metrics_logging.read_metrics(model_dir))
  latest = checkpoints.latest_step(model_dir)
  assert 2 <= latest <= killed_at < STEPS

  # 2. Resume here; SIGTERM (delivered to this process) once the resumed run has logged a step.
  def send_sigterm_after_a_step():
    deadline = time.time() + 240
    truncated = False  # the resumed run first drops the killed run's records after the checkpoint
    while time.time() < deadline:
      steps = [r["step"] for r in metrics_logging.read_metrics(model_dir)]
      if not truncated:
        truncated = max(steps, default=0) <= latest
      elif any(step > latest for step in steps):
        os.kill(os.getpid(), signal.SIGTERM)
        return
      time.sleep(0.01)

  sender = threading.Thread(target=send_sigterm_after_a_step, daemon=True)
  with _LateSigtermGuard() as guard:
    sender.start()
    result = helpers.train_in_process(model_dir, steps=STEPS, period=2, log_every=1)
    sender.join(timeout=5)
  assert not guard.late, "SIGTERM arrived after training had finished"
  assert result.resumed_from == latest and result.preempted
  stopped_at = result.step
  assert latest < stopped_at < STEPS
  assert checkpoints.latest_step(model_dir) == stopped_at  # saved on SIGTERM

  # 3. The next start resumes from the SIGTERM checkpoint and finishes.
  result = helpers.train_in_process(model_dir, steps=STEPS, period=2, log_every=1)
  assert result.resumed_from == stopped_at and result.step == STEPS and not result.preempted
  records = metrics_logging.read_metrics(model_dir)
  assert [r["step"] for r in records] == list(range(1, STEPS + 1))
  assert {r["step"]: r["loss"] for r in records} == straight
