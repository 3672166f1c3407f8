"""Prompt formats of the generation (NLG) tasks, after GPT-3 (Brown et al. 2020, appendix G) and GLaM.

Each formatter maps raw TFDS examples to PromptItems whose continuation is " " + the first gold answer. The
conversational tasks (QuAC, CoQA) are in prompts_dialogue.py.
"""
from __future__ import annotations

import re

from skip_t5x.data import metrics
from skip_t5x.data.prompt_items import Example, PromptItem, dedup, generation_item, per_example, text, texts

SQUAD_ABSTAIN = "unanswerable"  # what the exemplar of an unanswerable SQuAD v2 question answers
_DROP_DATE = re.compile(r"^(\d+)-([A-Za-z]*)-(\d+)$")  # TFDS drop writes dates as f"{year}-{month}-{day}"


def _qa_prompt(question: str) -> str:
  return f"Q: {question.strip()}\nA:"


@per_example
def trivia_qa(ex: Example):
  """Golds: the answer's value, aliases and normalized aliases (scored with TriviaQA's normalization)."""
  answer = ex["answer"]
  golds = dedup([text(answer["value"])] + texts(answer["aliases"]) + texts(answer["normalized_aliases"]))
  question = text(ex["question"])
  return generation_item(question, _qa_prompt(question), golds)


@per_example
def natural_questions(ex: Example):
  """natural_questions_open questions are lower case without a question mark: it is added."""
  question = text(ex["question"]).strip()
  asked = question if question.endswith("?") else question + "?"
  return generation_item(question, _qa_prompt(asked), dedup(texts(ex["answer"])))


@per_example
def web_questions(ex: Example):
  question = text(ex["question"])
  return generation_item(question, _qa_prompt(question), dedup(texts(ex["answers"])))


@per_example
def squad_v2(ex: Example):
  """As the official SQuAD v2 scorer: an unanswerable question's only gold answer is the empty string. Its
  exemplar answers SQUAD_ABSTAIN, and `squad_v2_answer` reads that answer as the empty prediction."""
  prompt = (f"Title: {text(ex['title']).strip()}\n\nBackground: {text(ex['context']).strip()}\n\n"
            f"Q: {text(ex['question']).strip()}\n\nA:")
  key = text(ex["id"]) + prompt
  answers = dedup(texts(ex["answers"]["text"]))
  if bool(ex["is_impossible"]) or not answers:
    return PromptItem(key=key, prompts=(prompt,), continuations=(" " + SQUAD_ABSTAIN,), correct=(0,),
                      answers=("",))
  return generation_item(key, prompt, answers)


@per_example
def lambada(ex: Example):
  """The passage without its last word is the prompt; the last word is the answer."""
  passage = " ".join(text(ex["passage"]).split())
  context, _, last_word = passage.rpartition(" ")
  if not context or not last_word:
    return None
  return generation_item(passage, context, [last_word])


def drop_answer_text(answer: str) -> str:
  """A TFDS drop answer as the official DROP scorer writes it: dates, which TFDS formats as 'year-month-day'
  ('1996-June-12'), become 'day month year' ('12 June 1996'); other answers are kept. (TFDS keeps only the
  first span of a multi-span answer, and a date without a day becomes the empty answer.)"""
  match = _DROP_DATE.match(answer.strip())
  if not match:
    return answer
  year, month, day = match.groups()
  return " ".join(part for part in (day, month, year) if part)


@per_example
def drop(ex: Example):
  """Keyed by query_id, so an item is never its own exemplar."""
  golds = dedup(drop_answer_text(a) for a in [text(ex["answer"])] + texts(ex["validated_answers"]))
  prompt = f"Passage: {text(ex['passage']).strip()}\nQuestion: {text(ex['question']).strip()}\nAnswer:"
  return generation_item("drop:" + text(ex["query_id"]).strip(), prompt, golds)


def first_line(prediction: str) -> str:
  """Generation postprocessing: the answer ends at the first newline (the next exemplar-style turn)."""
  return prediction.strip().split("\n", 1)[0].strip()


def first_word(prediction: str) -> str:
  """LAMBADA postprocessing: only the first word counts."""
  words = prediction.strip().split()
  return words[0] if words else ""


def squad_v2_answer(prediction: str) -> str:
  """SQuAD v2 postprocessing: the first line; the abstention answer SQUAD_ABSTAIN is the empty prediction."""
  answer = first_line(prediction)
  return "" if metrics.normalize_answer(answer) == SQUAD_ABSTAIN else answer
