"""Module names of earlier layouts, kept importable so that config.gin files written by earlier runs still load.

An operative config lists the modules its gin files imported (``import skip_t5x.models``, ...). Those modules
moved into subpackages; this finder maps each old name to its new home (the same module object, so the gin
configurables are registered once).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

RENAMED = {
    "skip_t5x.models": "skip_t5x.model.decoder_only",
    "skip_t5x.inference": "skip_t5x.evaluation.generation",
}


class _AliasLoader(importlib.abc.Loader):

  def __init__(self, target: str):
    self.target = target

  def create_module(self, spec):
    return importlib.import_module(self.target)

  def exec_module(self, module) -> None:
    pass


class LegacyNameFinder(importlib.abc.MetaPathFinder):
  """Resolves the names in RENAMED to the modules that replaced them."""

  def find_spec(self, fullname, path=None, target=None):
    if fullname not in RENAMED:
      return None
    return importlib.util.spec_from_loader(fullname, _AliasLoader(RENAMED[fullname]))


def install() -> None:
  if not any(isinstance(f, LegacyNameFinder) for f in sys.meta_path):
    sys.meta_path.append(LegacyNameFinder())
