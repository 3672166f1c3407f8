"""Command-line gin handling shared by the train, eval and infer entry points (T5X conventions).

  --gin_file=PATH          repeatable; later files override earlier ones
  --gin.NAME=VALUE         any macro (NAME) or binding (configurable.param) override; rewritten to --gin_bindings
  --gin_bindings='X = Y'   raw gin bindings, repeatable
  --gin_search_paths=A,B   folders searched for gin files and includes (made absolute)

Typical use in an entry point::

  def console_entry():
    gin_utils.run(main)            # rewrites --gin.X=Y, then absl.app.run(main)

  def main(argv):
    gin_utils.parse_gin_flags(extra_bindings={'MODEL_DIR': FLAGS.model_dir})
    ...

Validation happens here, before any compile: missing gin files, unknown macros in --gin.NAME=, unknown
configurables or parameters, and the routing macros' ranges (``validate_macros``).
"""
from __future__ import annotations

import importlib.util  # noqa: F401  (gin's resource reader needs it imported before parsing, see STACK.md)
import logging
import os
import re
import sys
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence

from absl import app
from absl import flags
import gin
from gin import config as gin_config

_GIN_ARG = re.compile(r"^--gin\.([^=]+)=(.*)$", re.DOTALL)
_MACRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The repository's gin/ folder: searched after user paths so that 'models/skip_tiny.gin' resolves from anywhere.
PACKAGE_GIN_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "gin"))


class _DropGinPathProbes(logging.Filter):
  """gin logs 'Path not found' at ERROR for every search-path prefix it probes; those are not errors."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.getMessage().startswith("Path not found:") and "gin" in record.pathname)


logging.getLogger().addFilter(_DropGinPathProbes())


class GinConfigError(ValueError):
  """A gin file, binding or macro value is invalid; the message names the culprit."""


def define_flags() -> None:
  """Defines --gin_file, --gin_bindings and --gin_search_paths (idempotent)."""
  if "gin_file" in flags.FLAGS:
    return
  flags.DEFINE_multi_string("gin_file", [], "Gin config file(s); repeatable, later files win.")
  flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings, e.g. 'SKIP_RATIO = 0.5'; repeatable.")
  flags.DEFINE_list("gin_search_paths", [], "Comma-separated folders searched for gin files and includes.")


def rewrite_gin_args(argv: Sequence[str]) -> List[str]:
  """Rewrites every ``--gin.NAME=VALUE`` into ``--gin_bindings=NAME = VALUE`` (absl has no dotted flags)."""
  out = []
  for arg in argv:
    match = _GIN_ARG.match(arg)
    if match:
      out.append(f"--gin_bindings={match.group(1)} = {match.group(2)}")
    else:
      out.append(arg)
  return out


def run(main: Callable[[List[str]], Any], argv: Optional[Sequence[str]] = None) -> None:
  """absl.app.run with --gin.X=Y rewriting; use as the console entry point."""
  define_flags()
  argv = rewrite_gin_args(sys.argv if argv is None else argv)
  app.run(main, argv=argv)


def absolute_search_paths(paths: Iterable[str]) -> List[str]:
  """User search paths made absolute, followed by the cwd and the repository's gin/ folder (deduplicated)."""
  result: List[str] = []
  for path in list(paths) + [os.getcwd(), PACKAGE_GIN_DIR]:
    path = os.path.abspath(os.path.expanduser(path))
    if path not in result:
      result.append(path)
  return result


def _use_only_absolute_search_paths(search_paths: Sequence[str]) -> None:
  """Makes gin look up relative files and includes only under these absolute folders.

  gin also probes a relative path as given ('' prefix) and then as a Python package path; when the cwd holds a
  folder of the same name (e.g. runs/ after `--model_dir=runs/demo`), that probe imports it as a namespace package
  and crashes (STACK.md). The cwd itself is one of ``search_paths``, in absolute form.
  """
  prefixes = gin_config._LOCATION_PREFIXES  # pylint: disable=protected-access
  prefixes[:] = list(search_paths)


def resolve_gin_file(path: str, search_paths: Sequence[str]) -> str:
  """Absolute path of a gin file, looked up as given, then under each search path; GinConfigError if absent."""
  candidates = [path] if os.path.isabs(path) else [os.path.join(p, path) for p in search_paths]
  for candidate in candidates:
    if os.path.isfile(candidate):
      return os.path.abspath(candidate)
  raise GinConfigError(f"gin file not found: {path!r} (searched: {', '.join(candidates)})")


def _binding_lhs(binding: str) -> str:
  return binding.split("=", 1)[0].strip()


def known_macros() -> set:
  """Names of macros that the parsed config defines or references (%NAME)."""
  names = set()
  for (scope, selector), _ in gin_config._CONFIG.items():  # pylint: disable=protected-access
    if selector.endswith("gin.macro") and scope:
      names.add(scope)
  for ref in gin_config.iterate_references(gin_config._CONFIG):  # pylint: disable=protected-access
    if ref.configurable.wrapped is gin_config.macro:
      names.add("/".join(ref.scopes))
  return names


def check_macro_overrides(bindings: Sequence[str]) -> None:
  """Fails on a dot-less override NAME = ... whose macro the config neither defines nor references.

  gin would silently create a new, unused macro (e.g. a typo such as SKIP_RATO) and keep the old value.
  """
  known = known_macros()
  for binding in bindings:
    lhs = _binding_lhs(binding)
    if "." in lhs or "/" in lhs or not _MACRO_NAME.match(lhs):
      continue
    if lhs not in known:
      close = sorted(n for n in known if n.lower().startswith(lhs.lower()[:3]))
      hint = f" (did you mean one of {close}?)" if close else ""
      raise GinConfigError(
          f"unknown gin macro {lhs!r} in binding {binding!r}: no gin file defines or uses %{lhs}{hint}")


def parse_gin(gin_files: Sequence[str],
              gin_bindings: Sequence[str] = (),
              search_paths: Sequence[str] = (),
              extra_bindings: Optional[Mapping[str, Any]] = None,
              finalize: bool = True) -> List[str]:
  """Parses gin files then bindings, validating both; returns the resolved file paths.

  ``extra_bindings`` maps macro or binding names to Python values (e.g. {'MODEL_DIR': '/tmp/x'}); they are applied
  before ``gin_bindings`` so the command line still wins. Import the modules that register the configurables
  (cli.import_registrations) before calling this.
  """
  if not gin_files:
    raise GinConfigError("no --gin_file given")
  search_paths = absolute_search_paths(search_paths)
  _use_only_absolute_search_paths(search_paths)
  resolved = [resolve_gin_file(f, search_paths) for f in gin_files]
  for path in resolved:
    try:
      gin.parse_config_file(path)
    except (ValueError, KeyError, IOError, SyntaxError) as e:
      raise GinConfigError(f"error in gin file {path}: {e}") from e
  bindings = [f"{name} = {value!r}" for name, value in (extra_bindings or {}).items()]
  bindings += list(gin_bindings)
  check_macro_overrides(bindings)
  for binding in bindings:
    try:
      gin.parse_config(binding)
    except (ValueError, KeyError, SyntaxError) as e:
      raise GinConfigError(f"invalid gin binding {binding!r}: {e}") from e
  validate_macros()
  if finalize:
    gin.finalize()
  return resolved


def parse_gin_flags(extra_bindings: Optional[Mapping[str, Any]] = None, finalize: bool = True) -> List[str]:
  """parse_gin() from the absl flags --gin_file, --gin_bindings and --gin_search_paths."""
  fl = flags.FLAGS
  return parse_gin(fl.gin_file, fl.gin_bindings, fl.gin_search_paths, extra_bindings, finalize)


def query_macro(name: str, default: Any = None) -> Any:
  """Value of macro NAME, or ``default`` when it is not defined."""
  try:
    return gin.query_parameter(f"%{name}")
  except ValueError:
    return default


def evaluate_macro(name: str) -> Any:
  """The value of macro NAME as a gin-configured parameter would receive it (e.g. the MODEL object).

  gin.query_parameter('%NAME') returns the macro's unevaluated value; references inside it must be called in the
  macro's own scope, because the operative config (MODEL_DIR/config.gin) scopes their bindings under it
  ('MODEL/DecoderConfig.num_layers = ...').
  """
  value = gin.query_parameter(f"%{name}")
  if isinstance(value, gin_config.ConfigurableReference) and value.evaluate:
    with gin.config_scope(name):
      return value.scoped_configurable_fn()
  return value


# Counts: their macros must be ints (None allowed where the binding allows it).
INTEGER_MACROS = ("TRAIN_STEPS", "BATCH_SIZE", "MICROBATCHES", "WARMUP_STEPS", "CHECKPOINT_PERIOD", "KEEP_CHECKPOINTS",
                  "LOG_EVERY_STEPS", "SEED", "MESH_DATA", "MESH_FSDP", "MESH_MODEL", "VOCAB_SIZE")


def macro_choices() -> dict:
  """The allowed values of the choice macros, from the layers that define them (one list per knob)."""
  from skip_t5x.layers import fused_attention, routing  # pylint: disable=g-import-not-at-top

  return {
      "ROUTED": routing.ROUTED_CHOICES,
      "DISPATCH": routing.DISPATCH_CHOICES,
      "ROUTING": routing.POLICY_CHOICES,
      "ATTENTION": fused_attention.IMPLEMENTATIONS,
  }


def validate_macros() -> None:
  """Range checks on the routing macros, when defined: SKIP_RATIO in [0, 1), CAPACITY_FACTOR > 0, ..."""
  checks = {
      "SKIP_RATIO": (lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
      "INFERENCE_SKIP_RATIO": (lambda v: 0.0 <= v < 1.0, "must be None or in [0, 1)"),
      "CAPACITY_FACTOR": (lambda v: v > 0, "must be > 0"),
      "ROUTER_LOSS_WEIGHT": (lambda v: v >= 0, "must be >= 0"),
      "TRAIN_STEPS": (lambda v: v > 0, "must be > 0"),
      "BATCH_SIZE": (lambda v: v > 0, "must be > 0"),
  }
  for name, (ok, requirement) in checks.items():
    value = query_macro(name)
    if value is None:
      continue
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise GinConfigError(f"{name}={value!r} {requirement} (got a {type(value).__name__})")
    if not ok(value):
      raise GinConfigError(f"{name}={value!r} {requirement}")
  for name in INTEGER_MACROS:  # 4.0 or 2.5 where a count is meant: refuse rather than round or crash later
    value = query_macro(name)
    if isinstance(value, (bool, float)):
      raise GinConfigError(f"{name}={value!r} must be an integer")
  for name, allowed in macro_choices().items():
    value = query_macro(name)
    if value is not None and value not in allowed:
      raise GinConfigError(f"{name}={value!r} must be one of {allowed}")


def write_operative_config(model_dir: str, filename: str = "config.gin") -> str:
  """Writes gin's operative config (every binding actually used so far) to MODEL_DIR/config.gin (process 0)."""
  import jax  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (gfile: local paths and gs:// alike)

  path = os.path.join(model_dir, filename)
  if jax.process_index() == 0:
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(path, "w") as f:
      f.write(gin.operative_config_str())
  return path


TRAIN_CONFIG = "config.gin"  # the operative config a training run writes into its model dir


def train_config_first(model_dir: str, gin_files: Sequence[str], use_train_config: bool = True) -> List[str]:
  """MODEL_DIR/config.gin (when present and wanted) followed by `gin_files`, so the latter win."""
  train_config = os.path.join(model_dir, TRAIN_CONFIG)
  if use_train_config and os.path.isfile(train_config):
    return [os.path.abspath(train_config)] + list(gin_files)
  return list(gin_files)
