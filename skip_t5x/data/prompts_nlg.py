"""Prompt formats of the generation (NLG) tasks, after GPT-3 (Brown et al. 2020, appendix G) and GLaM.

Each formatter maps raw TFDS examples to PromptItems whose continuation is " " + the first gold answer.
"""
from __future__ import annotations

from typing import Iterable, Iterator, List

from skip_t5x.data.prompt_items import (Example, PromptItem, generation_item, per_example, text, texts)


def _dedup(values: Iterable[str]) -> List[str]:
  seen, out = set(), []
  for v in values:
    v = v.strip()
    if v and v not in seen:
      seen.add(v)
      out.append(v)
  return out


def _qa_prompt(question: str) -> str:
  return f"Q: {question.strip()}\nA:"


@per_example
def trivia_qa(ex: Example):
  answer = ex["answer"]
  golds = _dedup([text(answer["value"])] + texts(answer["aliases"]) + texts(answer["normalized_aliases"]))
  question = text(ex["question"])
  return generation_item(question, _qa_prompt(question), golds)


@per_example
def natural_questions(ex: Example):
  question = text(ex["question"])
  return generation_item(question, _qa_prompt(question), _dedup(texts(ex["answer"])))


@per_example
def web_questions(ex: Example):
  question = text(ex["question"])
  return generation_item(question, _qa_prompt(question), _dedup(texts(ex["answers"])))


@per_example
def squad_v2(ex: Example):
  """Unanswerable questions have the gold answer 'unanswerable'."""
  answers = _dedup(texts(ex["answers"]["text"]))
  if bool(ex["is_impossible"]) or not answers:
    answers = ["unanswerable"]
  prompt = (f"Title: {text(ex['title']).strip()}\n\nBackground: {text(ex['context']).strip()}\n\n"
            f"Q: {text(ex['question']).strip()}\n\nA:")
  return generation_item(text(ex["id"]) + prompt, prompt, answers)


@per_example
def lambada(ex: Example):
  """The passage without its last word is the prompt; the last word is the answer."""
  passage = " ".join(text(ex["passage"]).split())
  context, _, last_word = passage.rpartition(" ")
  if not context or not last_word:
    return None
  return generation_item(passage, context, [last_word])


@per_example
def drop(ex: Example):
  golds = _dedup([text(ex["answer"])] + texts(ex["validated_answers"]))
  prompt = f"Passage: {text(ex['passage']).strip()}\nQuestion: {text(ex['question']).strip()}\nAnswer:"
  return generation_item(text(ex["query_id"]) + prompt, prompt, golds)


def _dialogue_prompt(header: str, turns: List[tuple], question: str) -> str:
  history = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in turns)
  return f"{header}\n\n{history}Q: {question}\nA:"


def quac(examples: Iterable[Example]) -> Iterator[PromptItem]:
  """TFDS QuAC has one row per question: consecutive rows over the same context form a dialogue, whose earlier
  turns (question and the original answer) become the history in the prompt."""
  context, turns = None, []
  for ex in examples:
    header = (f"{text(ex['title']).strip()}: {text(ex['section_title']).strip()}\n\n"
              f"{text(ex['context']).strip()}")
    if header != context:
      context, turns = header, []
    question = text(ex["question"]).strip()
    golds = _dedup(texts(ex["answers"]["text"]) + [text(ex["orig_answer"]["text"])])
    item = generation_item(header + "\x1f" + question + str(len(turns)),
                           _dialogue_prompt(header, turns, question), golds)
    if item is not None:
      yield item
    turns.append((question, text(ex["orig_answer"]["text"]).strip()))


def coqa(examples: Iterable[Example]) -> Iterator[PromptItem]:
  """One TFDS row per story with its questions and answers: one item per question, earlier turns as history."""
  for ex in examples:
    story = text(ex["story"]).strip()
    questions = texts(ex["questions"])
    answers = texts(ex["answers"]["input_text"])
    turns = []
    for i, (question, answer) in enumerate(zip(questions, answers)):
      item = generation_item(f"{story}\x1f{i}\x1f{question}",
                             _dialogue_prompt(story, turns, question.strip()), [answer])
      if item is not None:
        yield item
      turns.append((question.strip(), answer.strip()))


def first_line(prediction: str) -> str:
  """Generation postprocessing: the answer ends at the first newline (the next exemplar-style turn)."""
  return prediction.strip().split("\n", 1)[0].strip()


def first_word(prediction: str) -> str:
  """LAMBADA postprocessing: only the first word counts."""
  words = prediction.strip().split()
  return words[0] if words else ""
