"""One expected 1-shot item: what the task must produce for the eval row at `idx` of the fixtures."""
import dataclasses
from typing import List, Union


@dataclasses.dataclass(frozen=True)
class Golden:
  idx: int  # index of the item among the task's evaluated items
  demonstration: str  # the exemplar, solved, before the "\n\n" separator
  prompts: Union[str, List[str]]  # the item's prompt (one per candidate for partial scoring)
  targets: List[str]  # the continuation per candidate (NLU) or the first gold answer (NLG)
  expected: list  # NLU: indices of the correct candidates; NLG: the gold answers
