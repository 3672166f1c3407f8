"""Prompt formats of the rank-classification (NLU) tasks, after GPT-3 (Brown et al. 2020, appendix G) and GLaM.

Candidates start with a space (" yes"), so prompt + candidate reads as one text. Winograd-style tasks use
partial scoring: the option replaces the blank inside the prompt and the shared rest of the sentence is scored.
"""
from __future__ import annotations

from typing import Iterable, Iterator, List, Optional, Sequence

from skip_t5x.data.prompt_items import (Example, PromptItem, per_example, rank_item, text, texts)

_YES_NO = (" no", " yes")
_LETTERS = "ABCDE"


def _question_answer(question: str) -> str:
  return f"Question: {question.strip()}\nAnswer:"


def _spaced(candidates: Sequence[str]) -> List[str]:
  return [" " + c.strip() for c in candidates]


@per_example
def hellaswag(ex: Example):
  prompt = f"{text(ex['activity_label']).strip()}: {text(ex['context']).strip()}"
  return rank_item(prompt, prompt, _spaced(texts(ex["endings"])), ex["label"])


@per_example
def story_cloze(ex: Example):
  prompt = " ".join(text(ex["context"]).split())
  return rank_item(prompt, prompt, _spaced(texts(ex["endings"])), ex["label"])


def _partial_scoring_item(key: str, sentence: str, start: int, end: int, options: Sequence[str],
                          label: int) -> Optional[PromptItem]:
  """The option replaces sentence[start:end] at the end of each prompt; the rest of the sentence is scored."""
  continuation = sentence[end:]
  if not 0 <= start < end <= len(sentence) or not continuation.strip() or not 0 <= label < len(options):
    return None
  prefix = sentence[:start]
  return PromptItem(key=key, prompts=tuple(prefix + o.strip() for o in options),
                    continuations=(continuation,) * len(options), correct=(int(label),))


@per_example
def winograd(ex: Example):
  sentence = text(ex["text"])
  return _partial_scoring_item(sentence, sentence, int(ex["pronoun_start"]), int(ex["pronoun_end"]),
                               [text(ex["option1"]), text(ex["option2"])], int(ex["label"]))


@per_example
def winogrande(ex: Example):
  sentence = text(ex["sentence"])
  blank = sentence.find("_")
  if blank < 0:
    return None
  return _partial_scoring_item(sentence, sentence, blank, blank + 1,
                               [text(ex["option1"]), text(ex["option2"])], int(ex["label"]))


@per_example
def piqa(ex: Example):
  prompt = _question_answer(text(ex["goal"]))
  return rank_item(prompt, prompt, _spaced([text(ex["sol1"]), text(ex["sol2"])]), ex["label"])


@per_example
def arc(ex: Example):
  prompt = _question_answer(text(ex["question"]))
  labels = [int(x) for x in ex["choices"]["label"]]
  answer = int(ex["answerKey"])
  correct = [i for i, label in enumerate(labels) if label == answer]
  if not correct:
    return None
  return rank_item(prompt, prompt, _spaced(texts(ex["choices"]["text"])), correct[0])


@per_example
def openbookqa(ex: Example):
  question = ex["question"]
  prompt = text(question["stem"]).strip()
  choices = [text(question[f"choice_{letter}"]) for letter in "ABCD"]
  return rank_item(prompt, prompt, _spaced(choices), ex["answerKey"])


def race(examples: Iterable[Example]) -> Iterator[PromptItem]:
  """One TFDS row per article with several questions: one item per question."""
  for ex in examples:
    article = text(ex["article"]).strip()
    for question, options, answer in zip(texts(ex["questions"]), list(ex["options"]), texts(ex["answers"])):
      answer = answer.strip()
      if answer not in _LETTERS:
        continue
      prompt = f"Article: {article}\n\n{_question_answer(question)}"
      item = rank_item(prompt, prompt, _spaced(texts(options)), _LETTERS.index(answer))
      if item is not None:
        yield item


@per_example
def boolq(ex: Example):
  prompt = f"{text(ex['passage']).strip()}\nQuestion: {text(ex['question']).strip()}?\nAnswer:"
  return rank_item(prompt, prompt, _YES_NO, ex["label"])  # label 1 = True = " yes"


@per_example
def cb(ex: Example):
  prompt = (f"{text(ex['premise']).strip()}\nQuestion: {text(ex['hypothesis']).strip()} True, False or Neither?"
            "\nAnswer:")
  # ClassLabel order: entailment, contradiction, neutral
  return rank_item(prompt, prompt, (" True", " False", " Neither"), ex["label"])


@per_example
def copa(ex: Example):
  premise = text(ex["premise"]).strip()
  if premise.endswith("."):
    premise = premise[:-1]
  connector = " because" if text(ex["question"]).strip() == "cause" else " therefore"

  def lower_first(choice: str) -> str:
    choice = choice.strip()
    return " " + choice[:1].lower() + choice[1:]

  prompt = premise + connector
  return rank_item(prompt, prompt, [lower_first(text(ex["choice1"])), lower_first(text(ex["choice2"]))],
                   ex["label"])


@per_example
def rte(ex: Example):
  prompt = f"{text(ex['premise']).strip()}\nQuestion: {text(ex['hypothesis']).strip()} True or False?\nAnswer:"
  return rank_item(prompt, prompt, (" True", " False"), ex["label"])  # ClassLabel: entailment, not_entailment


@per_example
def wic(ex: Example):
  prompt = (f"Sentence 1: {text(ex['sentence1']).strip()}\nSentence 2: {text(ex['sentence2']).strip()}\n"
            f"Question: Is the word '{text(ex['word']).strip()}' used in the same way in the two sentences "
            "above?\nAnswer:")
  return rank_item(prompt, prompt, _YES_NO, ex["label"])


@per_example
def wsc(ex: Example):
  prompt = (f"Passage: {text(ex['text']).strip()}\nQuestion: In the passage above, does the pronoun "
            f"\"{text(ex['span2_text']).strip()}\" refer to {text(ex['span1_text']).strip()}?\nAnswer:")
  return rank_item(prompt, prompt, _YES_NO, ex["label"])


@per_example
def multirc(ex: Example):
  """One item per answer option: is this answer correct? (F1a is computed over all options.)"""
  prompt = (f"{text(ex['paragraph']).strip()}\nQuestion: {text(ex['question']).strip()}\n"
            f"Is \"{text(ex['answer']).strip()}\" a correct answer?\nAnswer:")
  idx = ex["idx"]
  key = f"{int(idx['paragraph'])}/{int(idx['question'])}/{int(idx['answer'])}\x1f{prompt}"
  return rank_item(key, prompt, _YES_NO, ex["label"])


@per_example
def record(ex: Example):
  """Each entity replaces @placeholder; the entity and the rest of the query are scored (not normalized)."""
  parts = text(ex["passage"]).split("@highlight")
  passage = parts[0].strip() + "".join("\n- " + h.strip() for h in parts[1:] if h.strip())
  query = text(ex["query"])
  if "@placeholder" not in query:
    return None
  prefix, _, suffix = query.partition("@placeholder")
  entities: List[str] = []
  for entity in texts(ex["entities"]):
    if entity.strip() and entity not in entities:
      entities.append(entity)
  answers = set(texts(ex["answers"]))
  correct = tuple(i for i, e in enumerate(entities) if e in answers)
  if not correct:
    return None
  prompt = f"{passage}\n- {prefix}"
  return PromptItem(key=prompt + "\x1f" + query, prompts=(prompt,) * len(entities),
                    continuations=tuple(e + suffix for e in entities), correct=correct)


@per_example
def anli(ex: Example):
  prompt = (f"{text(ex['context']).strip()}\nQuestion: {text(ex['hypothesis']).strip()} True, False or Neither?"
            "\nAnswer:")
  # ClassLabel order: entailment, neutral, contradiction
  return rank_item(prompt, prompt, (" True", " Neither", " False"), ex["label"])
