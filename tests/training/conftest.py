"""Fixtures of the trainer tests: the tiny seqio task, a persistent compilation cache, gin state hygiene."""
from __future__ import annotations

import contextlib
import fcntl
import os

import gin
import jax
import pytest

from tests.training import tiny_task


def shared_dir(tmp_path_factory, name: str):
  """A folder shared by all pytest-xdist workers of this session (the session's own folder without xdist)."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  path = root / name
  path.mkdir(exist_ok=True)
  return path


@contextlib.contextmanager
def exclusive(lock_path):
  """An inter-process lock (one xdist worker at a time)."""
  with open(lock_path, "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def compilation_cache_dir(tmp_path_factory):
  """An XLA compilation cache shared by this session's workers, in-process runs and subprocess trainings.

  Identical programs (same config, same 8 fake devices) then compile once per session instead of once per process.
  """
  path = str(shared_dir(tmp_path_factory, "xla_cache"))
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
  """Path of the tiny text corpus; the tiny task over it is registered in this process."""
  path = tiny_task.write_corpus(str(tmp_path_factory.mktemp("corpus") / "tiny.txt"))
  tiny_task.register(path)
  return path


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def subprocess_env(corpus_path: str, cache_dir: str) -> dict:
  """Environment of a subprocess training: same 8 fake CPU devices, the tiny task, the shared compile cache."""
  env = dict(os.environ)
  env[tiny_task.CORPUS_ENV] = corpus_path
  env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
  env["PYTHONPATH"] = os.pathsep.join(
      p for p in [os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)),
                  env.get("PYTHONPATH", "")] if p)
  return env
