"""Command-line gin handling: --gin.X=Y rewriting, search paths, and validation that names the culprit."""
from __future__ import annotations

import os

import gin
import pytest

from skip_t5x import gin_utils
from tests.training import helpers


def test_rewrite_gin_args_turns_dotted_flags_into_bindings():
  argv = ["prog", "--gin.SKIP_RATIO=0.25", "--gin_file=a.gin", "--gin.DecoderConfig.num_layers=2",
          "--gin.MIXTURE_OR_TASK_NAME='x=y'", "--model_dir=/tmp/d"]
  assert gin_utils.rewrite_gin_args(argv) == [
      "prog", "--gin_bindings=SKIP_RATIO = 0.25", "--gin_file=a.gin",
      "--gin_bindings=DecoderConfig.num_layers = 2", "--gin_bindings=MIXTURE_OR_TASK_NAME = 'x=y'",
      "--model_dir=/tmp/d"]


def test_search_paths_are_absolute_and_include_the_repo_gin_folder(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  os.mkdir("gin")  # a relative path that is also a folder in the cwd (crashes gin when left relative)
  paths = gin_utils.absolute_search_paths(["gin", "gin"])
  assert paths[0] == str(tmp_path / "gin")
  assert all(os.path.isabs(p) for p in paths)
  assert len(paths) == len(set(paths))
  assert gin_utils.PACKAGE_GIN_DIR in paths


def test_later_gin_file_and_command_line_win(tmp_path):
  override = tmp_path / "override.gin"
  override.write_text("SKIP_RATIO = 0.25\nDecoderConfig.num_layers = 3\n")
  helpers.parse(["runs/pretrain.gin", "models/skip_tiny.gin", str(override)], ["TRAIN_STEPS = 7"])
  assert gin.query_parameter("%SKIP_RATIO") == 0.25
  assert gin.query_parameter("DecoderConfig.num_layers") == 3
  assert gin.query_parameter("%TRAIN_STEPS") == 7
  helpers.parse(["runs/pretrain.gin", "models/skip_tiny.gin", str(override)], ["SKIP_RATIO = 0.75"])
  assert gin.query_parameter("%SKIP_RATIO") == 0.75


def test_unknown_macro_is_rejected_with_its_name():
  with pytest.raises(gin_utils.GinConfigError, match=r"unknown gin macro 'SKIP_RATO'.*SKIP_RATIO"):
    helpers.parse(bindings=["SKIP_RATO = 0.5"])


def test_macro_referenced_but_undefined_is_accepted():
  helpers.parse(bindings=["MODEL_DIR = '/tmp/x'"])  # pretrain.gin uses %MODEL_DIR without defining it
  assert gin.query_parameter("%MODEL_DIR") == "/tmp/x"


@pytest.mark.parametrize("binding, culprit", [
    ("DecoderConfig.num_layrs = 2", "num_layrs"),
    ("DecoderConfg.num_layers = 2", "DecoderConfg"),
])
def test_unknown_parameter_or_configurable_is_rejected(binding, culprit):
  with pytest.raises(gin_utils.GinConfigError, match=culprit):
    helpers.parse(bindings=[binding])


@pytest.mark.parametrize("binding, message", [
    ("SKIP_RATIO = 1.0", r"SKIP_RATIO=1.0 must be in \[0, 1\)"),
    ("SKIP_RATIO = -0.1", r"SKIP_RATIO=-0.1 must be in \[0, 1\)"),
    ("CAPACITY_FACTOR = 0.0", r"CAPACITY_FACTOR=0.0 must be > 0"),
    ("CAPACITY_FACTOR = -1", r"CAPACITY_FACTOR=-1 must be > 0"),
    ("DISPATCH = 'scatter'", r"DISPATCH='scatter' must be one of"),
    ("BATCH_SIZE = 0", r"BATCH_SIZE=0 must be > 0"),
    ("BATCH_SIZE = 4.0", r"BATCH_SIZE=4.0 must be an integer"),
    ("TRAIN_STEPS = 2.5", r"TRAIN_STEPS=2.5 must be an integer"),
    ("WARMUP_STEPS = 1e3", r"WARMUP_STEPS=1000.0 must be an integer"),
    ("MESH_DATA = True", r"MESH_DATA=True must be an integer"),
])
def test_macro_ranges_are_checked(binding, message):
  with pytest.raises(gin_utils.GinConfigError, match=message):
    helpers.parse(bindings=[binding])


def test_missing_gin_file_is_named(tmp_path):
  with pytest.raises(gin_utils.GinConfigError, match=r"gin file not found: 'runs/nope.gin'"):
    helpers.parse(["runs/pretrain.gin", "runs/nope.gin"])
  with pytest.raises(gin_utils.GinConfigError, match="no --gin_file"):
    gin_utils.parse_gin([])


def test_error_inside_a_gin_file_names_the_file(tmp_path):
  bad = tmp_path / "bad.gin"
  bad.write_text("DecoderConfig.num_layres = 2\n")
  with pytest.raises(gin_utils.GinConfigError, match=r"bad\.gin.*num_layres"):
    helpers.parse(["runs/pretrain.gin", "models/skip_tiny.gin", str(bad)])


def test_operative_config_is_written_and_parses_again(tmp_path):
  import skip_t5x.model.decoder_only  # noqa: F401

  helpers.parse(bindings=["SKIP_RATIO = 0.125"])
  config = gin_utils.evaluate_macro("MODEL")  # builds the model: marks bindings operative
  assert config.config.routing.skip_ratio == 0.125
  path = gin_utils.write_operative_config(str(tmp_path))
  text = open(path).read()
  assert path == str(tmp_path / "config.gin")
  assert "SKIP_RATIO = 0.125" in text
  gin.clear_config()
  gin_utils.parse_gin([path], finalize=False)
  assert gin.query_parameter("%SKIP_RATIO") == 0.125


def test_includes_resolve_when_the_cwd_has_folders_named_like_gin_folders(tmp_path, monkeypatch):
  # After `--model_dir=runs/demo` the cwd holds runs/; gin's own lookup would import it as a package and crash.
  monkeypatch.chdir(tmp_path)
  (tmp_path / "runs" / "demo").mkdir(parents=True)
  (tmp_path / "models").mkdir()
  helpers.parse([os.path.join(gin_utils.PACKAGE_GIN_DIR, "runs", "demo.gin")], ["MODEL_DIR = 'runs/demo'"])
  assert gin.query_parameter("%MIXTURE_OR_TASK_NAME") == "embedded_lm"
