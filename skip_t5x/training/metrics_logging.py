"""Training metrics: DIR/metrics/train.jsonl, TensorBoard events under DIR/tensorboard/train, a progress line.

Only process 0 writes. Each logged step is one JSON object: ``step``, ``loss``, ``accuracy``, the router metrics
(``router/density/<module>``, ``router/aux_loss``, ``router/z_loss``, ...), ``learning_rate``, ``tokens_per_sec``,
``tflops_per_sec_per_device`` (model/flops.py) and ``mfu`` (when the chip's peak is known).
"""
from __future__ import annotations

import datetime
import json
import math
import os
import sys
import time
from typing import Any, Dict, Mapping, Optional

from absl import logging
import jax

# Dense bf16 peak TFLOP/s per chip, by jax's device_kind (public spec sheets).
PEAK_TFLOPS_BY_DEVICE_KIND = {
    "TPU v2": 45.0,
    "TPU v3": 123.0,
    "TPU v4": 275.0,
    "TPU v5 lite": 197.0,
    "TPU v5e": 197.0,
    "TPU v5": 459.0,
    "TPU v5p": 459.0,
    "TPU v6 lite": 918.0,
    "TPU v6e": 918.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA H100 80GB HBM3": 989.0,
    "NVIDIA H200": 989.0,
}


def peak_tflops_per_device(device: Optional[jax.Device] = None) -> Optional[float]:
  """The chip's peak bf16 TFLOP/s, or None when unknown (e.g. CPU)."""
  device = device or jax.devices()[0]
  return PEAK_TFLOPS_BY_DEVICE_KIND.get(getattr(device, "device_kind", ""))


def metrics_path(model_dir: str) -> str:
  return os.path.join(model_dir, "metrics", "train.jsonl")


def read_metrics(model_dir: str, strict: bool = False) -> list:
  """All JSON records of DIR/metrics/train.jsonl, in file order ([] when there is none yet).

  A line that does not parse (a write cut short by a kill, or one still being written) is skipped, or with
  `strict` raises ValueError naming the file and line.
  """
  path = metrics_path(model_dir)
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError as e:
        if strict:
          raise ValueError(f"{path}:{number}: not a JSON object ({e})") from e
  return records


def _format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def _format_rate(value: float) -> str:
  for unit, scale in (("M", 1e6), ("k", 1e3)):
    if value >= scale:
      return f"{value / scale:.1f}{unit}"
  return f"{value:.0f}"


class MetricsLogger:
  """Writes logged steps to the JSONL file and TensorBoard and prints a progress line.

  On resume from step ``start_step`` records after that step (written by an interrupted run) are dropped, so the
  file always describes the trajectory that produced the checkpoint being continued.
  """

  def __init__(self, model_dir: str, total_steps: int, start_step: int = 0, tensorboard: bool = True,
               is_writer: Optional[bool] = None):
    self.model_dir = model_dir
    self.total_steps = total_steps
    self.is_writer = jax.process_index() == 0 if is_writer is None else is_writer
    self.path = metrics_path(model_dir)
    self.tensorboard_dir = os.path.join(model_dir, "tensorboard", "train")
    self._tensorboard = tensorboard
    self._tb_writer = None  # created with the first record: a run that stops before logging adds no event file
    self._file = None
    if not self.is_writer:
      return
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    self._truncate_after(start_step)
    self._file = open(self.path, "a", buffering=1)

  def _truncate_after(self, step: int) -> None:
    """Rewrites the file with the complete records up to ``step`` (drops later and partial lines); leaves it
    untouched when there is nothing to drop."""
    kept = [r for r in read_metrics(self.model_dir) if r.get("step", 0) <= step]
    if os.path.exists(self.path):
      with open(self.path) as f:
        lines = [line for line in f if line.strip()]
      if len(lines) == len(kept) and all(line.endswith("\n") for line in lines):
        return
    with open(self.path, "w") as f:
      for record in kept:
        f.write(json.dumps(record) + "\n")

  def write(self, step: int, metrics: Mapping[str, float]) -> Dict[str, Any]:
    """Appends one record {'step': step, **metrics} (values as floats) and the TensorBoard scalars."""
    record: Dict[str, Any] = {"step": int(step)}
    record.update({k: float(v) for k, v in metrics.items()})
    if not self.is_writer:
      return record
    try:
      self._file.write(json.dumps(record) + "\n")
    except OSError as e:
      raise OSError(e.errno, f"could not write {self.path}: {e.strerror}") from None
    if self._tensorboard:
      self._write_tensorboard(int(step), record)
    return record

  def _write_tensorboard(self, step: int, record: Mapping[str, float]) -> None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    try:
      if self._tb_writer is None:
        self._tb_writer = tf.summary.create_file_writer(self.tensorboard_dir)
      with self._tb_writer.as_default(step=step):
        for name, value in record.items():
          if name != "step" and math.isfinite(value):
            tf.summary.scalar(name, value)
      self._tb_writer.flush()
    except tf.errors.OpError as e:  # e.g. a full disk: one line naming the folder, not a TF traceback
      from skip_t5x.training.checkpoints import os_fault  # pylint: disable=g-import-not-at-top

      reason = " ".join(e.message.split())
      raise OSError(f"could not write TensorBoard events to {self.tensorboard_dir}: "
                    f"{os_fault(reason) or reason[:300]}") from None

  def progress(self, step: int, metrics: Mapping[str, float], seconds_per_step: float) -> str:
    """Prints and returns 'step 40/200 | loss 3.412 | acc 0.312 | density 0.51 | 12.3k tok/s | ETA 0:01:05'."""
    parts = [f"step {step}/{self.total_steps}", f"loss {metrics.get('loss', float('nan')):.4f}"]
    if "accuracy" in metrics:
      parts.append(f"acc {metrics['accuracy']:.3f}")
    if "router/density" in metrics:
      parts.append(f"density {metrics['router/density']:.3f}")
    if "tokens_per_sec" in metrics:
      parts.append(f"{_format_rate(metrics['tokens_per_sec'])} tok/s")
    if "mfu" in metrics:
      parts.append(f"MFU {100 * metrics['mfu']:.1f}%")
    parts.append(f"ETA {_format_duration((self.total_steps - step) * seconds_per_step)}")
    line = " | ".join(parts)
    if self.is_writer:
      print(line, flush=True)
      logging.info(line)
    return line

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None
    if self._tb_writer is not None:
      self._tb_writer.close()
      self._tb_writer = None


class Throughput:
  """Tokens/s (and TFLOP/s, MFU) between two logged steps."""

  def __init__(self, tokens_per_step: int, flops_per_token_fn=None, num_devices: int = 1,
               peak_tflops: Optional[float] = None):
    self.tokens_per_step = tokens_per_step
    self.flops_per_token_fn = flops_per_token_fn
    self.num_devices = num_devices
    self.peak_tflops = peak_tflops
    self._last_time = time.perf_counter()
    self._last_step: Optional[int] = None
    self.seconds_per_step = float("nan")

  def reset(self, step: int) -> None:
    self._last_time = time.perf_counter()
    self._last_step = step

  def measure(self, step: int, density: Optional[float] = None) -> Dict[str, float]:
    now = time.perf_counter()
    out: Dict[str, float] = {}
    if self._last_step is not None and step > self._last_step:
      elapsed = now - self._last_time
      self.seconds_per_step = elapsed / (step - self._last_step)
      tokens_per_sec = self.tokens_per_step / self.seconds_per_step
      out["tokens_per_sec"] = tokens_per_sec
      out["seconds_per_step"] = self.seconds_per_step
      if self.flops_per_token_fn is not None:
        flops_per_token = self.flops_per_token_fn(density)
        if flops_per_token:
          tflops = flops_per_token * tokens_per_sec / self.num_devices / 1e12
          out["tflops_per_sec_per_device"] = tflops
          if self.peak_tflops:
            out["mfu"] = tflops / self.peak_tflops
    self._last_time, self._last_step = now, step
    return out


def print_results_location(model_dir: str, extra: Optional[Mapping[str, str]] = None,
                           stream=sys.stdout) -> str:
  """The closing 'where are the results' message."""
  lines = [
      f"Results in {os.path.abspath(model_dir)}:",
      f"  checkpoints:   {os.path.join(model_dir, 'checkpoints')}",
      f"  metrics:       {metrics_path(model_dir)}",
      f"  tensorboard:   tensorboard --logdir {os.path.join(model_dir, 'tensorboard')}",
      f"  gin config:    {os.path.join(model_dir, 'config.gin')}",
  ]
  for name, value in (extra or {}).items():
    lines.append(f"  {name + ':':14s} {value}")
  text = "\n".join(lines)
  if jax.process_index() == 0:
    print(text, file=stream, flush=True)
  return text
