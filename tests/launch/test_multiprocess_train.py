"""A real multi-process training through the local executor matches a one-process run, and restores in one process.

2 processes x 4 CPU devices (jax.distributed on 127.0.0.1, launched by launch.local) and 1 process x 8 devices
(this test process) train the tiny skip model on the same gin config: mesh (data 1, fsdp 8, model 1), global batch
8, unshuffled unpacked rows (tests/launch/line_task.py), so every step sees the same rows. Their losses must agree,
and the 2-process checkpoint, restored here onto another mesh, must hold the same parameters as the reference.
"""
import json
import os
import threading

import gin
import jax
import numpy as np
import pytest

from launch import Experiment, Local, run_work_unit
from skip_t5x.training import checkpoints
from skip_t5x import gin_utils
from skip_t5x.training import optimizers
from skip_t5x import parallel
from skip_t5x import cli
from skip_t5x.training import state as train_state
from skip_t5x.training import step as train_step
from skip_t5x import training
from tests.launch import line_task

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIN_FILE = "tests/launch/tiny_multiprocess.gin"
STEPS = 4


def _metrics(model_dir):
  with open(os.path.join(model_dir, "metrics", "train.jsonl")) as f:
    return [json.loads(line) for line in f]


def _parse(model_dir):
  cli.import_registrations()
  gin.clear_config()
  gin_utils.parse_gin([os.path.join(REPO, GIN_FILE)], [f"MODEL_DIR = '{model_dir}'"], finalize=False)


@pytest.mark.slow
def test_two_processes_train_like_one_and_the_checkpoint_restores_in_one(tmp_path):
  corpus = line_task.write_corpus(str(tmp_path / "lines.txt"))
  experiment = Experiment(name="mp", gin_files=[GIN_FILE], model_dir=str(tmp_path / "{name}_{wid}"),
                          env={line_task.CORPUS_ENV: corpus})
  unit = experiment.work_units()[0]
  outcome = {}

  def launch():
    cfg = Local(num_processes=2, devices_per_process=4, log_dir=str(tmp_path / "logs"), timeout_s=300)
    outcome["result"] = run_work_unit(unit, cfg, announce=lambda _: None, cwd=REPO)

  thread = threading.Thread(target=launch)
  thread.start()
  reference_dir = str(tmp_path / "reference")
  try:
    line_task.register(corpus)
    _parse(reference_dir)
    assert jax.device_count() == 8 and jax.process_count() == 1
    reference = training.train()
    assert reference.step == STEPS
    thread.join(timeout=320)
    assert not thread.is_alive(), "the 2-process run did not finish"
    result = outcome["result"]
    assert result.ok, result.message
    assert len(result.processes) == 2 and all(p.returncode == 0 for p in result.processes)
    with open(result.processes[1].log_path) as f:
      assert "mesh {'data': 1, 'fsdp': 8, 'model': 1}" not in f.read()  # only process 0 prints the summary

    multi, single = _metrics(unit.model_dir), _metrics(reference_dir)
    assert [m["step"] for m in multi] == [m["step"] for m in single] == list(range(1, STEPS + 1))
    # The same rows in every step (token counts match exactly) and the same losses up to summation order.
    assert [m["num_tokens"] for m in multi] == [m["num_tokens"] for m in single]
    np.testing.assert_allclose([m["loss"] for m in multi], [m["loss"] for m in single], rtol=2e-5)
    assert single[-1]["loss"] < single[0]["loss"]  # it trains

    # Restore both checkpoints in this single process onto a different mesh (data 8) and compare the params.
    bindings = training.TrainSpec()
    tx, _ = optimizers.make_optimizer(bindings.optimizer, bindings.train_steps)
    mesh_config = parallel.MeshConfig(data=8, fsdp=1, model=1)
    mesh = parallel.create_mesh(mesh_config)
    abstract, _ = train_state.abstract_train_state(bindings.model, tx, mesh, mesh_config.rules(),
                                               {"decoder_input_tokens": (8, 32)})
    restored = {}
    for name, model_dir in (("multi", unit.model_dir), ("single", reference_dir)):
      ckpt = checkpoints.Checkpointer(model_dir)
      try:
        state, meta = ckpt.restore_latest(abstract)
      finally:
        ckpt.close()
      assert int(meta["step"]) == STEPS and int(jax.device_get(state.step)) == STEPS
      restored[name] = state
    multi_params = jax.tree.leaves(jax.device_get(restored["multi"].params))
    single_params = jax.tree.leaves(jax.device_get(restored["single"].params))
    assert len(multi_params) == len(single_params) > 0
    for a, b in zip(multi_params, single_params):  # summation order differs; Adam amplifies it over the steps
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)
  finally:
    gin.clear_config()
    thread.join(timeout=320)
