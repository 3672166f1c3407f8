"""The package's import layering: layers <- model <- training / evaluation <- commands, data imports no model code.

`layering_violations` reads every module's imports (top-level and inside functions) from its source and checks them
against ALLOWED; a synthetic module graph shows that a wrong import is caught.
"""
import ast
import os

import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "skip_t5x")
COMMANDS = {"train", "eval", "infer", "aot", "plot_metrics", "cli", "study", "report"}
BASE = {"gin_utils", "legacy_names", "__init__"}

# What each part of the package may import (besides itself). The commands may import anything.
ALLOWED = {
    "layers": set(),
    "data": set(),
    "base": {"layers"},  # gin_utils validates the choice macros against the layers' own lists
    "model": {"layers", "base"},
    "parallel": {"base"},
    "training": {"model", "layers", "parallel", "data", "base"},
    "evaluation": {"training", "model", "layers", "parallel", "data", "base"},
    "study": {"evaluation", "training", "model", "layers", "parallel", "data", "base"},
}


def part_of(module: str) -> str:
  """'skip_t5x.model.decoder' -> 'model'; top-level commands -> 'commands'; shared helpers -> 'base'."""
  parts = module.split(".")
  if len(parts) == 1:
    return "base"
  if len(parts) > 2 or os.path.isdir(os.path.join(PACKAGE_DIR, parts[1])):
    return parts[1]
  return "commands" if parts[1] in COMMANDS else "base"


def imports_of(path: str, module: str) -> set:
  """skip_t5x modules that `path` imports anywhere in its body."""
  tree = ast.parse(open(path, encoding="utf-8").read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      base = node.module
      if node.level:
        base = ".".join(module.split(".")[:-node.level] + [node.module])
      found.add(base)
      found.update(f"{base}.{a.name}" for a in node.names)
  return {name for name in found if name == "skip_t5x" or name.startswith("skip_t5x.")}


def package_graph() -> dict:
  graph = {}
  for root, _, files in os.walk(PACKAGE_DIR):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].replace(os.sep, ".")
        module = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
        graph[module] = imports_of(path, module)
  return graph


def layering_violations(graph: dict) -> list:
  """'importer -> imported (part -> part)' for every import the layering forbids."""
  bad = []
  for importer, imported in sorted(graph.items()):
    source = part_of(importer)
    if source == "commands":
      continue
    for name in sorted(imported):
      target = part_of(name)
      if name == "skip_t5x" or target == source:
        continue
      if target == "commands" or target not in ALLOWED[source]:
        bad.append(f"{importer} -> {name} ({source} -> {target})")
  return bad


def test_the_package_respects_its_layering():
  graph = package_graph()
  assert "skip_t5x.model.decoder" in graph and "skip_t5x.training.loop" in graph  # the walk found the package
  assert layering_violations(graph) == []


@pytest.mark.parametrize("importer, imported", [
    ("skip_t5x.layers.attention", "skip_t5x.model.decoder"),  # a layer reaching up into the model
    ("skip_t5x.model.decoding", "skip_t5x.training.state"),  # the model reaching into training
    ("skip_t5x.data.vocab", "skip_t5x.layers.routing"),  # data importing model-side code
    ("skip_t5x.training.loop", "skip_t5x.evaluation.runner"),  # training reaching up into evaluation
    ("skip_t5x.evaluation.runner", "skip_t5x.cli"),  # a library importing a command helper
    ("skip_t5x.parallel.placement", "skip_t5x.model.decoder_only"),  # parallel knows no model
])
def test_a_wrong_import_in_a_synthetic_graph_is_reported(importer, imported):
  graph = {"skip_t5x.model.decoder": {"skip_t5x.layers.attention"}, "skip_t5x.train": {"skip_t5x.training"},
           importer: {imported}}
  assert layering_violations(graph) == [f"{importer} -> {imported} ({part_of(importer)} -> {part_of(imported)})"]


def test_allowed_imports_in_a_synthetic_graph_pass():
  graph = {"skip_t5x.model.decoder": {"skip_t5x.layers.attention", "skip_t5x.gin_utils"},
           "skip_t5x.evaluation.evaluate": {"skip_t5x.training.checkpoints", "skip_t5x.parallel"},
           "skip_t5x.eval": {"skip_t5x.evaluation", "skip_t5x.cli"}}
  assert layering_violations(graph) == []
