"""Counts of routing decisions over held-out batches: density per routed module, skips per token id, a sample.

Only real tokens count (the loss-weight mask: no padding). A token's skip fraction is its skips over its
occurrences x routed modules; the token lists keep tokens seen at least MIN_OCCURRENCES times, so that a rare token
skipped once does not top the list.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional

import numpy as np

MIN_OCCURRENCES = 10


def visible(text: str) -> str:
  """A token as a table or a plot can show it: control characters escaped ('\\n'), empty as ''."""
  return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text or "''"


def token_text(vocabulary) -> Callable[[int], str]:
  """id -> its SentencePiece piece ('▁the'), else its decoded text (control characters escaped)."""
  base = getattr(vocabulary, "resolved", vocabulary)  # a DeferredVocabulary resolves to the real one
  tokenizer = getattr(base, "tokenizer", None)
  if tokenizer is not None and hasattr(tokenizer, "id_to_piece"):
    size = tokenizer.get_piece_size()
    return lambda i: visible(tokenizer.id_to_piece(int(i))) if 0 <= int(i) < size else f"<{int(i)}>"
  return lambda i: visible(vocabulary.decode([int(i)]))


class RoutingTally:
  """Accumulates execute decisions ({module: [batch, length] bool}) with their input tokens and token mask."""

  def __init__(self, vocab_size: int):
    self.executed: Dict[str, int] = {}
    self.counted: Dict[str, int] = {}
    self.seen = np.zeros([vocab_size], np.int64)  # token occurrences x routed modules
    self.skipped = np.zeros([vocab_size], np.int64)
    self.first: Optional[tuple] = None  # (tokens [length], mask [length], {module: [length] bool}) of row 0

  def add(self, decisions: Mapping[str, np.ndarray], tokens: np.ndarray, mask: np.ndarray) -> None:
    mask = np.asarray(mask, bool)  # [batch, length]
    tokens = np.asarray(tokens)  # [batch, length]
    for module, execute in decisions.items():
      execute = np.asarray(execute, bool) & mask  # [batch, length]
      self.executed[module] = self.executed.get(module, 0) + int(execute.sum())
      self.counted[module] = self.counted.get(module, 0) + int(mask.sum())
      np.add.at(self.seen, tokens[mask], 1)
      np.add.at(self.skipped, tokens[mask & ~execute], 1)
    if self.first is None:
      self.first = (tokens[0], mask[0], {m: np.asarray(d, bool)[0] for m, d in decisions.items()})

  def densities(self) -> Dict[str, float]:
    """Realized execute density per routed module, in module order."""
    return {m: self.executed[m] / max(self.counted[m], 1) for m in sorted(self.executed)}

  def mean_density(self) -> Optional[float]:
    densities = self.densities()
    return float(np.mean(list(densities.values()))) if densities else None

  def token_lists(self, top: int, text: Callable[[int], str]) -> Dict[str, List[dict]]:
    """The `top` tokens that skip most and least often: token text, id, occurrences and skip fraction."""
    modules = max(len(self.executed), 1)
    occurrences = self.seen // modules
    ids = np.flatnonzero(occurrences >= MIN_OCCURRENCES)
    if not self.executed or ids.size == 0:
      return {"most_skipped": [], "least_skipped": []}
    fraction = self.skipped[ids] / self.seen[ids]
    order = ids[np.lexsort((-occurrences[ids], -fraction))]  # most skipped first; ties: more frequent first

    def entry(i):
      return {"token": text(i), "id": int(i), "occurrences": int(occurrences[i]),
              "skip_fraction": float(self.skipped[i] / self.seen[i])}

    most = list(order[:min(top, (len(order) + 1) // 2)])  # two disjoint lists, also when few tokens qualify
    least = [i for i in ids[np.lexsort((-occurrences[ids], fraction))] if i not in set(most)][:top]
    return {"most_skipped": [entry(i) for i in most], "least_skipped": [entry(i) for i in least],
            "min_occurrences": MIN_OCCURRENCES}

  def sample(self, max_tokens: int, text: Callable[[int], str]) -> Optional[dict]:
    """The first held-out row's first `max_tokens` real tokens and which routed modules each executed."""
    if self.first is None or not self.first[2]:
      return None
    tokens, mask, decisions = self.first
    positions = np.flatnonzero(mask)[:max_tokens]
    return {"tokens": [text(tokens[p]) for p in positions], "ids": [int(tokens[p]) for p in positions],
            "modules": sorted(decisions),
            "execute": [[int(decisions[m][p]) for p in positions] for m in sorted(decisions)]}
