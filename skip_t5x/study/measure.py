"""What a finished run is measured on in the study process: held-out LM loss, routing statistics, size and FLOPs.

The held-out loss restores the run's latest params onto its mesh (``parallel.place_model`` +
``checkpoints.restore_params``) and runs ``model.loss_fn`` deterministically (argmax routing, as at inference) over
the first ``Study.heldout_batches`` batches of the training mixture's 'validation' split, unshuffled
(``training.input_pipeline``), so every arm sees the same tokens. The same batches give each routed module's
realized density, how often each token id skips, and one sample passage's decisions (``model.routing_decisions``).
FLOPs per token (``model.flops``) are at the training sequence length: training FLOPs at the mean density training
realized (RUN/metrics/train.jsonl), inference FLOPs at the density the evaluation realized (RUN/eval/summary.json).
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from skip_t5x import parallel
from skip_t5x.model import flops as flops_lib
from skip_t5x.study import configs, files
from skip_t5x.study import spec as spec_lib
from skip_t5x.study.stats import mean_train_density
from skip_t5x.study.tally import RoutingTally, token_text
from skip_t5x.training import checkpoints, input_pipeline


def eval_density(run_dir: str) -> Optional[float]:
  summary = files.read_json(os.path.join(run_dir, "eval", "summary.json")) or {}
  density = summary.get("router_density")
  return float(density) if density is not None else None


def flops_figures(config, seq_len: int, train_density: Optional[float], infer_density: Optional[float]) -> dict:
  """Analytic FLOPs per token (model/flops.py): dense-equivalent and at the realized densities."""
  routed = config.routing.enabled

  def at(density, training):
    return flops_lib.total_flops_per_token(config, seq_len, density if routed else None, training=training)

  return {
      "seq_len": seq_len,
      "train_density": train_density, "infer_density": infer_density,
      "train_dense": flops_lib.dense_flops_per_token(config, seq_len, training=True),
      "infer_dense": flops_lib.dense_flops_per_token(config, seq_len),
      "train_realized": at(train_density if train_density is not None else 1.0, True),
      "infer_realized": at(infer_density if infer_density is not None else 1.0, False),
  }


def _to_host(x: jax.Array) -> np.ndarray:
  """A replicated array as numpy, also when it spans several hosts."""
  return np.asarray(x.addressable_data(0))


def heldout_step(model, placement: parallel.Placement) -> Callable:
  """Jitted (params, batch) -> (loss_fn metrics, decisions, input tokens, real-token mask), all replicated."""
  replicated = NamedSharding(placement.mesh, PartitionSpec())

  def step(params, batch):
    _, metrics = model.loss_fn(params, batch, None)
    decisions = model.routing_decisions(params, batch)  # {module: [batch, length] bool}
    mask = batch["decoder_loss_weights"] > 0  # [batch, length]
    return metrics, decisions, batch["decoder_input_tokens"], mask

  return jax.jit(step, out_shardings=replicated)


def heldout_pass(step_fn: Callable, params: Any, placement: parallel.Placement, data, num_batches: int,
                 tally: RoutingTally) -> Tuple[float, float]:
  """(token-weighted cross entropy, tokens) over the first `num_batches` batches of `data`; fills `tally`."""
  ce_sum = tokens = 0.0
  batches = input_pipeline.batch_iterator(data, jax.process_index(), jax.process_count())
  with placement.context():
    for _, host_batch in zip(range(num_batches), batches):
      batch = parallel.make_global_batch(host_batch, placement.mesh, placement.rules)
      metrics, decisions, input_tokens, mask = jax.tree.map(_to_host, step_fn(params, batch))
      ce_sum += float(metrics["cross_entropy"]) * float(metrics["num_tokens"])
      tokens += float(metrics["num_tokens"])
      tally.add(decisions, input_tokens, mask)
  return ce_sum / max(tokens, 1.0), tokens


def measure_run(study: spec_lib.Study, run_dir: str, cache: Optional[Dict[str, Any]] = None) -> dict:
  """The analysis of one finished run (see the module docstring); `cache` reuses compiled steps across seeds."""
  cache = {} if cache is None else cache
  train_spec = configs.trained_spec(run_dir)
  model, config, seq_len = train_spec.model, train_spec.model.config, train_spec.dataset.sequence_length
  data = dataclasses.replace(train_spec.dataset, split="validation", shuffle=False, seed=0,
                             batch_size=study.heldout_batch_size)
  placement = parallel.place_model(model, train_spec.mesh, seq_len, batch_size=data.batch_size)
  abstract = placement.abstract_params()
  params, step = checkpoints.restore_params(run_dir, abstract)
  key = repr((config, dict(placement.mesh.shape), seq_len, data.batch_size))
  if key not in cache:  # the seeds of an arm share one compiled step
    cache[key] = heldout_step(model, placement)
  tally = RoutingTally(config.vocab_size)
  cross_entropy, tokens = heldout_pass(cache[key], params, placement, data, study.heldout_batches, tally)
  text = token_text(task_vocabulary(data.mixture_or_task_name))
  infer_density = eval_density(run_dir)
  return {
      "run_dir": run_dir, "step": step, "num_params": parallel.param_count(abstract),
      "num_layers": config.num_layers, "d_model": config.d_model,
      "routing": {"enabled": config.routing.enabled, "routed": config.routing.routed,
                  "policy": config.routing.policy, "target_skip_ratio": config.routing.skip_ratio,
                  "dispatch": config.routing.dispatch},
      "heldout": {"cross_entropy": cross_entropy, "perplexity": math.exp(min(cross_entropy, 700.0)),
                  "tokens": tokens, "batches": study.heldout_batches, "split": "validation",
                  "mixture": data.mixture_or_task_name, "density": tally.mean_density(),
                  "density_per_module": tally.densities()},
      "flops": flops_figures(config, seq_len, mean_train_density(files.read_train_metrics(run_dir)),
                             infer_density if infer_density is not None else tally.mean_density()),
      "tokens": tally.token_lists(study.top_tokens, text),
      "sample": tally.sample(study.sample_tokens, text),
  }


def task_vocabulary(mixture_or_task_name: str):
  """The vocabulary of a task's 'targets' (to show token ids as text)."""
  import seqio  # pylint: disable=g-import-not-at-top

  return seqio.get_mixture_or_task(mixture_or_task_name).output_features["targets"].vocabulary
