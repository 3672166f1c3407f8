"""The embedded default corpus: English text that every Python installation ships.

Two sources, both read without importing any module they describe:
- `pydoc_data.topics`: the reference manual's help topics (one document per topic).
- docstrings of the standard library's pure-Python modules, read with `ast` from the source files (one document
  per module: its module, class and function docstrings in source order).

Both are hard-wrapped at ~72 columns; paragraphs that read as wrapped prose are joined into one line each (as an
LM sees prose elsewhere, and as the embedded eval tasks present it), while code, tables, lists and other
line-structured blocks keep their lines.

Extraction is deterministic: files and topics are visited in sorted order, nothing depends on import order or on
which optional modules happen to import, and docstrings repeated verbatim across the library are kept once (at
their first occurrence in that order). The corpus does depend on the Python version (its stdlib text); the version
is recorded in `CorpusInfo`.

Documents are split into train and held-out ("validation") by a stable hash of the document id, so the split does
not change when documents are added or removed elsewhere. The extracted corpus is cached as JSON (7 s to parse the
stdlib on a slow machine, milliseconds to reload).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import os
import re
import sys
import sysconfig
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

# Folders of the stdlib that hold tests, vendored packages or installed third-party code, not documentation.
_SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
                           "lib2to3", "ensurepip", "venv", "turtledemo"})  # plus config-* (build files)
HELD_OUT_PERCENT = 10  # share of documents (by id hash) in the held-out split
CORPUS_FORMAT_VERSION = 2  # bump when extraction changes, so stale caches are not reused (2: unwrapped prose)
_MIN_WRAPPED_LINE = 40  # characters: hard-wrapped prose fills its lines close to the wrap width (~72-79)
# indented, bullet, table, directive, prompt
_NOT_PROSE_START = re.compile(r"^(\s|[-*+•]\s|[|=+]|-{2,}|\d+[.)]\s|\.\. |>>>)")
SPLITS = ("train", "validation")


@dataclasses.dataclass(frozen=True)
class Document:
  """One document of the corpus: a stable id (e.g. 'topic/for', 'module/json.decoder') and its text."""

  doc_id: str
  text: str


@dataclasses.dataclass(frozen=True)
class CorpusInfo:
  """What a corpus was extracted from: enough to tell two corpora apart."""

  python_version: str
  num_documents: int
  num_chars: int
  sha256: str  # over the ids and texts of all documents, in order


def stable_hash(text: str) -> int:
  """A 64-bit hash of `text` that is the same in every process and on every machine (unlike hash())."""
  return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def split_of(doc_id: str) -> str:
  """'validation' for about HELD_OUT_PERCENT% of document ids (by stable hash), else 'train'."""
  return "validation" if stable_hash("split:" + doc_id) % 100 < HELD_OUT_PERCENT else "train"


def _stdlib_python_files(stdlib_dir: str) -> List[Tuple[str, str]]:
  """(dotted module name, path) of every documentation-bearing .py file under `stdlib_dir`, sorted by name."""
  found = []
  for root, dirs, files in os.walk(stdlib_dir):
    dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith("config-"))
    for name in sorted(files):
      if not name.endswith(".py"):
        continue
      rel = os.path.relpath(os.path.join(root, name), stdlib_dir)[: -len(".py")]
      parts = rel.split(os.sep)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      if not parts or any(not p.isidentifier() for p in parts):
        continue
      found.append((".".join(parts), os.path.join(root, name)))
  return sorted(found)


def unwrap_prose(text: str) -> str:
  """Joins the lines of each hard-wrapped prose paragraph (blank-line separated) with single spaces.

  A paragraph counts as wrapped prose when none of its lines starts with indentation, a bullet, a table rule, a
  directive or a prompt, and every line but the last is at least _MIN_WRAPPED_LINE characters long (short
  lines mean deliberate breaks: field lists, signatures, headings). Other paragraphs are kept as they are.
  """
  paragraphs = text.split("\n\n")
  out = []
  for para in paragraphs:
    lines = para.split("\n")
    wrapped = (len(lines) > 1 and not any(_NOT_PROSE_START.match(line) for line in lines)
               and all(len(line) >= _MIN_WRAPPED_LINE for line in lines[:-1]))
    out.append(" ".join(line.strip() for line in lines) if wrapped else para)
  return "\n\n".join(out)


def _docstrings_in_source_order(source: bytes) -> List[str]:
  """Module, class and function docstrings of a Python source, in the order they appear."""
  tree = ast.parse(source)
  nodes = [n for n in ast.walk(tree)
           if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
  nodes.sort(key=lambda n: getattr(n, "lineno", 0))
  docs = []
  for node in nodes:
    doc = ast.get_docstring(node, clean=True)
    if doc and doc.strip():
      docs.append(unwrap_prose(doc.strip()))
  return docs


def extract_documents(stdlib_dir: Optional[str] = None) -> List[Document]:
  """Extracts all documents, deterministically: topics first (sorted), then modules (sorted by dotted name)."""
  import pydoc_data.topics  # pylint: disable=import-outside-toplevel  (plain data, no side effects)

  documents = []
  for name in sorted(pydoc_data.topics.topics):
    text = unwrap_prose(pydoc_data.topics.topics[name].strip())
    if text:
      documents.append(Document(f"topic/{name}", text))

  seen = set()
  for module, path in _stdlib_python_files(stdlib_dir or sysconfig.get_paths()["stdlib"]):
    try:
      with open(path, "rb") as f:
        docs = _docstrings_in_source_order(f.read())
    except (SyntaxError, ValueError, UnicodeDecodeError, OSError):
      continue  # a file this interpreter cannot parse (e.g. a template) has no docs for us
    kept = []
    for doc in docs:
      if doc not in seen:
        seen.add(doc)
        kept.append(doc)
    if kept:
      documents.append(Document(f"module/{module}", "\n\n".join(kept)))
  return documents


def corpus_info(documents: Sequence[Document]) -> CorpusInfo:
  digest = hashlib.sha256()
  for doc in documents:
    digest.update(doc.doc_id.encode("utf-8") + b"\0" + doc.text.encode("utf-8") + b"\0")
  return CorpusInfo(
      python_version=".".join(map(str, sys.version_info[:3])),
      num_documents=len(documents),
      num_chars=sum(len(d.text) for d in documents),
      sha256=digest.hexdigest(),
  )


def default_cache_dir() -> str:
  return os.environ.get("SKIP_T5X_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "skip_t5x"))


def _cache_path(cache_dir: str) -> str:
  version = ".".join(map(str, sys.version_info[:3]))
  stdlib = sysconfig.get_paths()["stdlib"]
  key = hashlib.sha256(f"{CORPUS_FORMAT_VERSION}|{version}|{stdlib}".encode()).hexdigest()[:16]
  return os.path.join(cache_dir, f"embedded_corpus-py{version}-{key}.json")


@functools.lru_cache(maxsize=None)
def load_documents(cache_dir: Optional[str] = None) -> Tuple[Document, ...]:
  """All documents, from the JSON cache when present (written atomically on first use)."""
  path = _cache_path(cache_dir or default_cache_dir())
  if os.path.exists(path):
    try:
      with open(path, encoding="utf-8") as f:
        return tuple(Document(d, t) for d, t in json.load(f)["documents"])
    except (ValueError, KeyError, OSError):
      pass  # a corrupt cache is rebuilt below
  documents = extract_documents()
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      json.dump({"info": dataclasses.asdict(corpus_info(documents)),
                 "documents": [[d.doc_id, d.text] for d in documents]}, f)
    os.replace(tmp, path)  # atomic: concurrent writers leave one complete file
  except OSError:
    pass  # a read-only home still works, only slower
  return tuple(documents)


def split_documents(documents: Sequence[Document]) -> Dict[str, List[Document]]:
  """{'train': [...], 'validation': [...]}, each in corpus order."""
  out: Dict[str, List[Document]] = {s: [] for s in SPLITS}
  for doc in documents:
    out[split_of(doc.doc_id)].append(doc)
  return out


def documents_for_split(split: str, cache_dir: Optional[str] = None) -> List[Document]:
  if split not in SPLITS:
    raise ValueError(f"embedded corpus has splits {SPLITS}, got split={split!r}")
  return split_documents(load_documents(cache_dir))[split]
