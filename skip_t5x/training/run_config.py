"""MODEL_DIR/config.gin (the operative config eval and infer rebuild the model from) and its history.

config.gin changes only once a run really starts: after its first step was checked finite, so a refused resume
(another model, another batch size), a failed start or a first step that blows up leaves it as it was. Every run
that starts also keeps its config as ``config_history/config-<start step>-<time>.gin``, so what produced each
checkpoint stays known. A resume whose config differs from config.gin says which bindings changed.
"""
from __future__ import annotations

import datetime
import os
import re
from typing import Dict, List, Optional

import jax
import tensorflow as tf

CONFIG_NAME = "config.gin"
HISTORY_DIR = "config_history"
_BINDING = re.compile(r"^([A-Za-z_][\w./]*)\s*=\s*(.*)$")
LOCATION_BINDINGS = ("MODEL_DIR",)  # where the run is, not what it is: a moved or copied run is not a change


def bindings(text: str) -> Dict[str, str]:
  """{'SKIP_RATIO': '0.5', 'MODEL/DecoderConfig.d_model': '64', ...} of a gin config text.

  A binding starts at column 0 (``NAME = value``); indented lines continue its value. Imports, includes and
  comments are not bindings.
  """
  out: Dict[str, str] = {}
  name = None
  for line in text.splitlines():
    match = _BINDING.match(line)
    if match and not line.startswith(("import ", "include ")):
      name = match.group(1)
      out[name] = match.group(2).strip()
    elif name is not None and line[:1].isspace() and line.strip():
      out[name] += " " + line.strip()
    else:
      name = None
  return out


def changed_bindings(old_text: str, new_text: str) -> List[str]:
  """'NAME: old -> new' for every binding whose value differs, was added or was removed (sorted by name), except
  the run's location (LOCATION_BINDINGS)."""
  old, new = bindings(old_text), bindings(new_text)
  changes = []
  for name in sorted((set(old) | set(new)) - set(LOCATION_BINDINGS)):
    before, after = old.get(name, "(unset)"), new.get(name, "(unset)")
    if before != after:
      changes.append(f"{name}: {before} -> {after}")
  return changes


def _read(path: str) -> Optional[str]:
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path, "r") as f:
    return f.read()


def describe_changes(model_dir: str, new_text: str) -> Optional[str]:
  """A line naming the bindings that differ from MODEL_DIR/config.gin, or None (no config.gin, or no change)."""
  old_text = _read(os.path.join(model_dir, CONFIG_NAME))
  if old_text is None:
    return None
  changes = changed_bindings(old_text, new_text)
  if not changes:
    return None
  return (f"The config differs from {os.path.join(model_dir, CONFIG_NAME)} in {len(changes)} binding(s): "
          + "; ".join(changes))


def _stamp(seconds: Optional[float] = None) -> str:
  moment = datetime.datetime.fromtimestamp(seconds) if seconds is not None else datetime.datetime.now()
  return moment.strftime("%Y%m%dT%H%M%S")


def _history_texts(history_dir: str) -> List[str]:
  if not tf.io.gfile.isdir(history_dir):
    return []
  return [_read(os.path.join(history_dir, name)) or "" for name in sorted(tf.io.gfile.listdir(history_dir))]


def commit(model_dir: str, start_step: int, text: str) -> str:
  """Writes `text` (the run's operative config) to config.gin and config_history/ (process 0); returns its path.

  A config.gin that no history entry holds (written before histories were kept) is first kept as
  ``config-earlier-<its time>.gin``.
  """
  path = os.path.join(model_dir, CONFIG_NAME)
  if jax.process_index() != 0:
    return path
  history_dir = os.path.join(model_dir, HISTORY_DIR)
  tf.io.gfile.makedirs(history_dir)
  previous = _read(path)
  if previous is not None and previous not in _history_texts(history_dir):
    mtime = tf.io.gfile.stat(path).mtime_nsec / 1e9
    _write(os.path.join(history_dir, f"config-earlier-{_stamp(mtime)}.gin"), previous)
  entry = os.path.join(history_dir, f"config-{start_step}-{_stamp()}")
  suffix = 1
  while tf.io.gfile.exists(f"{entry}.gin" if suffix == 1 else f"{entry}-{suffix}.gin"):
    suffix += 1
  _write(f"{entry}.gin" if suffix == 1 else f"{entry}-{suffix}.gin", text)
  _write(path, text)
  return path


def _write(path: str, text: str) -> None:
  """Writes through a temporary file and a rename, so a reader never sees half a config."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(text)
  tf.io.gfile.rename(tmp, path, overwrite=True)
