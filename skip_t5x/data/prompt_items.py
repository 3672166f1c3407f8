"""The unit of the 1-shot suite: a PromptItem (one evaluated question with its candidates or gold answers).

Formatters turn raw TFDS examples (numpy dicts, as tfds.as_numpy yields them) into PromptItems. A formatter is a
function `Iterable[example] -> Iterator[PromptItem]`, so one example may give several items (RACE, CoQA, MultiRC)
and an item may depend on other rows (a QuAC dialogue's earlier turns). Malformed examples (label out of range,
empty candidate list, missing blank) give no item; the caller counts and reports them.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

Example = Mapping[str, Any]
Formatter = Callable[[Iterable[Example]], Iterator["PromptItem"]]


@dataclasses.dataclass(frozen=True)
class PromptItem:
  """One evaluated question.

  Rank classification: candidate c is scored as log p(continuations[c] | prompts[c]); `correct` lists the right
  candidates. Generation: a single prompt; `answers` are the gold answers, continuations[0] the first one.
  `key` identifies the example (an exemplar is never an item with the evaluated item's key).
  Dialogue items (QuAC, CoQA) list their earlier turns in `history`, oldest first: the text segments that appear
  back to back in prompts[0] from character `history_at` on, so a prompt over budget can drop its oldest turns.
  `credit` optionally gives each candidate a partial score in [0, 1] (ReCoRD: the candidate's F1 against the golds).
  """

  key: str
  prompts: Tuple[str, ...]
  continuations: Tuple[str, ...]
  correct: Tuple[int, ...]
  answers: Tuple[str, ...] = ()
  history: Tuple[str, ...] = ()
  history_at: int = 0
  credit: Tuple[float, ...] = ()

  def __post_init__(self):
    if len(self.prompts) != len(self.continuations) or not self.prompts:
      raise ValueError(f"item {self.key[:60]!r}: {len(self.prompts)} prompts for "
                       f"{len(self.continuations)} continuations")
    if not self.correct or any(not 0 <= c < len(self.prompts) for c in self.correct):
      raise ValueError(f"item {self.key[:60]!r}: correct={self.correct} out of range")
    joined = "".join(self.history)
    if self.history and self.prompts[0][self.history_at:self.history_at + len(joined)] != joined:
      raise ValueError(f"item {self.key[:60]!r}: history is not in prompts[0] at {self.history_at}")
    if self.credit and len(self.credit) != len(self.prompts):
      raise ValueError(f"item {self.key[:60]!r}: {len(self.credit)} credits for {len(self.prompts)} candidates")

  @property
  def is_generation(self) -> bool:
    return bool(self.answers)

  def prompt_keeping(self, turns: int) -> str:
    """prompts[0] with only the last `turns` history turns (the oldest ones dropped)."""
    turns = max(0, min(turns, len(self.history)))
    if turns == len(self.history):
      return self.prompts[0]
    start, end = self.history_at, self.history_at + len("".join(self.history))
    kept = "".join(self.history[len(self.history) - turns:])
    return self.prompts[0][:start] + kept + self.prompts[0][end:]

  def demonstration(self, history_turns: Optional[int] = None) -> str:
    """The solved item, as it appears when used as the exemplar (with its last `history_turns` turns)."""
    c = self.correct[0]
    prompt = self.prompts[c] if history_turns is None else self.prompt_keeping(history_turns)
    return prompt + self.continuations[c]


def text(value: Any) -> str:
  """A TFDS text value as str (bytes decoded as UTF-8, undecodable bytes replaced)."""
  if callable(getattr(value, "numpy", None)):  # rows of ragged features arrive as eager tensors
    value = value.numpy()
  if isinstance(value, bytes):
    return value.decode("utf-8", errors="replace")
  if hasattr(value, "item") and getattr(value, "shape", None) == ():
    return text(value.item())
  return str(value)


def texts(values: Any) -> List[str]:
  if callable(getattr(values, "numpy", None)):
    values = values.numpy()
  return [text(v) for v in list(values)]


def dedup(values: Iterable[str]) -> List[str]:
  """Stripped, non-empty values, first occurrence kept, in order."""
  seen, out = set(), []
  for v in values:
    v = v.strip()
    if v and v not in seen:
      seen.add(v)
      out.append(v)
  return out


def rank_item(key: str, prompt: str, candidates: Sequence[str], label: Any) -> Optional[PromptItem]:
  """A shared-prompt rank item; None when the label is not a valid candidate index."""
  label = int(label)
  if not candidates or not 0 <= label < len(candidates):
    return None
  return PromptItem(key=key, prompts=(prompt,) * len(candidates), continuations=tuple(candidates),
                    correct=(label,))


def generation_item(key: str, prompt: str, answers: Sequence[str]) -> Optional[PromptItem]:
  """A generation item answered by " " + answers[0]; None without a non-empty answer."""
  answers = tuple(a.strip() for a in answers if a and a.strip())
  if not answers:
    return None
  return PromptItem(key=key, prompts=(prompt,), continuations=(" " + answers[0],), correct=(0,),
                    answers=answers)


def per_example(fn: Callable[[Example], Optional[PromptItem]]) -> Formatter:
  """Lifts a one-example-to-at-most-one-item function into a Formatter."""

  @functools.wraps(fn)
  def formatter(examples: Iterable[Example]) -> Iterator[PromptItem]:
    for example in examples:
      item = fn(example)
      if item is not None:
        yield item

  return formatter
