"""Prompt formats of the conversational QA tasks (QuAC, CoQA): a passage, the dialogue's earlier turns, a question.

    {header}\n\nQ: {question 1}\nA: {answer 1}\n\nQ: {question 2}\nA:

The earlier turns are the item's `history` (oldest first), so a prompt over the input budget drops its oldest
turns first (fewshot.fit_dialogue_history) and never the current question.
"""
from __future__ import annotations

import itertools
import re
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from skip_t5x.data.prompt_items import Example, PromptItem, dedup, text, texts

_QUAC_TURN = re.compile(r"^(?P<dialogue>.+)_q#(?P<turn>\d+)$")  # QuAC's question id, 'C_<hash>_1_q#3'


def dialogue_item(key: str, header: str, turns: Sequence[Tuple[str, str]], question: str,
                  answers: Sequence[str]) -> Optional[PromptItem]:
  """A generation item over `header` whose history is `turns` [(question, answer)], oldest first."""
  answers = tuple(dedup(answers))
  if not answers or not question:
    return None
  history = tuple(f"Q: {q}\nA: {a}\n\n" for q, a in turns)
  prefix = f"{header}\n\n"
  prompt = prefix + "".join(history) + f"Q: {question}\nA:"
  return PromptItem(key=key, prompts=(prompt,), continuations=(" " + answers[0],), correct=(0,),
                    answers=answers, history=history, history_at=len(prefix))


def coqa(examples: Iterable[Example]) -> Iterator[PromptItem]:
  """One TFDS row per story with its questions and answers ('answers'/'input_text') in dialogue order: one item
  per question, the earlier questions and answers of the row as history."""
  for ex in examples:
    story = text(ex["story"]).strip()
    questions = [q.strip() for q in texts(ex["questions"])]
    answers = [a.strip() for a in texts(ex["answers"]["input_text"])]
    turns: List[Tuple[str, str]] = []
    for i, (question, answer) in enumerate(zip(questions, answers)):
      item = dialogue_item(f"{story}\x1f{i}\x1f{question}", story, turns, question, [answer])
      if item is not None:
        yield item
      turns.append((question, answer))


def _quac_header(ex: Example) -> str:
  return f"{text(ex['title']).strip()}: {text(ex['section_title']).strip()}\n\n{text(ex['context']).strip()}"


def _quac_turn(ex: Example) -> Tuple[str, List[str], str]:
  """(question, gold answers, the dialogue's answer shown in later turns' history)."""
  shown = text(ex["orig_answer"]["text"]).strip()
  return text(ex["question"]).strip(), texts(ex["answers"]["text"]) + [shown], shown


def quac_turn_id(ex: Example) -> Optional[Tuple[str, int]]:
  """(dialogue id, turn index) from the row's QuAC question id ('C_<hash>_1_q#3' -> ('C_<hash>_1', 3)), or None
  when the row carries no id: TFDS quac 1.0.0 keeps it only as the record key, which tfds does not return."""
  if "id" not in ex:
    return None
  match = _QUAC_TURN.match(text(ex["id"]).strip())
  return (match["dialogue"], int(match["turn"])) if match else None


def quac(examples: Iterable[Example]) -> Iterator[PromptItem]:
  """One row per question, rows in no particular order (TFDS serves them in hashed-key order).

  With question ids, the rows of a dialogue are ordered by turn index and a question's history holds only the
  earlier turns of its own dialogue. Without (TFDS quac), no row can be placed in its dialogue, so every question
  is asked with no history: the section and its text only.
  """
  examples = iter(examples)
  first = next(examples, None)
  if first is None:
    return
  if quac_turn_id(first) is None:
    yield from _quac_without_history(first, examples)
  else:
    yield from _quac_by_turn_id(first, examples)


def _quac_without_history(first: Example, rest: Iterator[Example]) -> Iterator[PromptItem]:
  for row in itertools.chain([first], rest):
    header = _quac_header(row)
    question, golds, _ = _quac_turn(row)
    item = dialogue_item(f"{header}\x1f{question}", header, (), question, golds)
    if item is not None:
      yield item


def _quac_by_turn_id(first: Example, rest: Iterator[Example]) -> Iterator[PromptItem]:
  dialogues: Dict[str, Dict[int, tuple]] = {}
  headers: Dict[str, str] = {}
  for row in itertools.chain([first], rest):  # only the fields a prompt needs are kept
    turn_id = quac_turn_id(row)
    if turn_id is None:
      raise ValueError(f"quac: a row without a question id among rows with ids: {text(row['question'])!r}")
    dialogue, turn = turn_id
    headers.setdefault(dialogue, _quac_header(row))
    dialogues.setdefault(dialogue, {})[turn] = _quac_turn(row)
  for dialogue, turns in dialogues.items():
    history: List[Tuple[str, str]] = []
    for turn in sorted(turns):
      question, golds, shown = turns[turn]
      item = dialogue_item(f"{dialogue}_q#{turn}", headers[dialogue], history, question, golds)
      if item is not None:
        yield item
      history.append((question, shown))
