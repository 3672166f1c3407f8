"""File access for studies and reports, local paths and gs:// alike (tf.io.gfile), JSON in and out."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, List, Optional


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (slow import; only when files are touched)

  return tf.io.gfile


def is_remote(path: str) -> bool:
  return "://" in path


def exists(path: str) -> bool:
  return _gfile().exists(path)


def makedirs(path: str) -> None:
  _gfile().makedirs(path)


def glob(pattern: str) -> List[str]:
  return sorted(_gfile().glob(pattern))


def remove(path: str) -> None:
  """Removes a file if it is there (several hosts of one run may race to remove it)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  try:
    _gfile().remove(path)
  except tf.errors.NotFoundError:
    pass


def read_text(path: str) -> str:
  with _gfile().GFile(path, "r") as f:
    return f.read()


def write_text(path: str, text: str) -> str:
  makedirs(os.path.dirname(path))
  with _gfile().GFile(path, "w") as f:
    f.write(text)
  return path


def write_bytes(path: str, data: bytes) -> str:
  makedirs(os.path.dirname(path))
  with _gfile().GFile(path, "wb") as f:
    f.write(data)
  return path


def read_json(path: str) -> Optional[Any]:
  """The parsed file, or None when it does not exist."""
  if not exists(path):
    return None
  try:
    return json.loads(read_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON ({e})") from e


def write_json(path: str, data: Any) -> str:
  return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
  if hasattr(value, "item"):  # numpy scalars
    return value.item()
  if isinstance(value, (set, tuple)):
    return list(value)
  raise TypeError(f"{value!r} ({type(value).__name__}) is not JSON serialisable")


def read_train_metrics(run_dir: str) -> list:
  """RUN/metrics/train.jsonl through metrics_logging.read_metrics; a remote file is copied to a local folder first."""
  from skip_t5x.training import metrics_logging  # pylint: disable=g-import-not-at-top  (imports jax)

  if not is_remote(run_dir):
    return metrics_logging.read_metrics(run_dir)
  remote = metrics_logging.metrics_path(run_dir)
  if not exists(remote):
    return []
  local_dir = tempfile.mkdtemp(prefix="skip_t5x_report_")
  try:
    local = metrics_logging.metrics_path(local_dir)
    os.makedirs(os.path.dirname(local))
    _gfile().copy(remote, local, overwrite=True)
    return metrics_logging.read_metrics(local_dir)
  finally:
    shutil.rmtree(local_dir, ignore_errors=True)
