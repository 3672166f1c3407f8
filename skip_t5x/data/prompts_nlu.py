"""Prompt formats of the rank-classification (NLU) tasks, after GPT-3 (Brown et al. 2020, appendix G) and GLaM.

Candidates start with a space (" yes"), so prompt + candidate reads as one text. Winograd-style tasks use
partial scoring: the option replaces the blank inside the prompt and the shared rest of the sentence is scored.
"""
from __future__ import annotations

from typing import Iterable, Iterator, List, Optional, Sequence

from skip_t5x.data import metrics, prompt_text
from skip_t5x.data.prompt_items import (Example, PromptItem, per_example, rank_item, text, texts)

_YES_NO = (" no", " yes")  # super_glue ClassLabel ('False', 'True'): label 1 = True = " yes"
_LETTERS = "ABCDE"


def _question_answer(question: str) -> str:
  return f"Question: {question.strip()}\nAnswer:"


def _spaced(candidates: Sequence[str]) -> List[str]:
  """Candidates continue the prompt after a space, even ", the man ..." (targets are tokenized on their own, with
  SentencePiece's dummy prefix: a candidate without its space would be read with one anyway)."""
  return [" " + c.strip() for c in candidates]


def _nli_prompt(premise: str, hypothesis: str, choices: str) -> str:
  """GPT-3's NLI format: the hypothesis is a sentence of its own ('... peeled down. True, False, or Neither?')."""
  return f"{premise.strip()}\nQuestion: {prompt_text.with_final_period(hypothesis)} {choices}\nAnswer:"


@per_example
def hellaswag(ex: Example):
  """TFDS 'context' is ctx_a + ' ' + ctx_b with ctx_b lower-cased: sentence starts are capitalized again, and the
  WikiHow [title]/[step] tags removed (the common HellaSwag preprocessing), in the context and the endings."""
  context = prompt_text.capitalize_sentences(prompt_text.hellaswag_clean(text(ex["context"])))
  prompt = f"{prompt_text.hellaswag_clean(text(ex['activity_label']))}: {context}"
  endings = [prompt_text.hellaswag_clean(e) for e in texts(ex["endings"])]
  return rank_item(prompt, prompt, _spaced(endings), ex["label"])


def _context_and_endings(ex: Example, label: int) -> Optional[PromptItem]:
  prompt = " ".join(text(ex["context"]).split())
  return rank_item(prompt, prompt, _spaced(texts(ex["endings"])), label)


@per_example
def story_cloze(ex: Example):
  """TFDS story_cloze 'label' is AnswerRightEnding: 1 or 2 (1-based; -1 where the split has no labels)."""
  return _context_and_endings(ex, int(ex["label"]) - 1)


@per_example
def context_endings(ex: Example):
  """{'context', 'endings', 'label'} with a 0-based label (the embedded continuation task)."""
  return _context_and_endings(ex, int(ex["label"]))


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
  """WSC273: both options read as they would in the pronoun's place (case of a leading 'The'/'A'/'His'...
  follows the pronoun's, possessive pronouns make possessive options); label 0 = option1."""
  sentence = text(ex["text"])
  start, end = int(ex["pronoun_start"]), int(ex["pronoun_end"])
  pronoun = sentence[start:end]
  next_word = sentence[end:].split(" ", 2)[1] if sentence[end:].startswith(" ") else ""
  options = [prompt_text.option_in_place_of(text(ex[k]), pronoun, next_word) for k in ("option1", "option2")]
  return _partial_scoring_item(sentence, sentence, start, end, options, int(ex["label"]))


@per_example
def winogrande(ex: Example):
  """ClassLabel names ('1', '2'): label 0 = option1."""
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
  """ClassLabel A-E for both choices.label and answerKey (the builder maps the '1'-'5' keys of some questions to
  A-E): the gold candidate is the choice whose label equals answerKey."""
  prompt = _question_answer(text(ex["question"]))
  labels = [int(x) for x in ex["choices"]["label"]]
  answer = int(ex["answerKey"])
  correct = [i for i, label in enumerate(labels) if label == answer]
  if not correct:
    return None
  return rank_item(prompt, prompt, _spaced(texts(ex["choices"]["text"])), correct[0])


@per_example
def openbookqa(ex: Example):
  """answerKey: ClassLabel A-D = choice_A..choice_D."""
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
  prompt = _nli_prompt(text(ex["premise"]), text(ex["hypothesis"]), "True, False, or Neither?")
  # ClassLabel order: entailment, contradiction, neutral
  return rank_item(prompt, prompt, (" True", " False", " Neither"), ex["label"])


@per_example
def copa(ex: Example):
  """label 0 = choice1. The premise loses its final period; the alternative continues the sentence."""
  premise = text(ex["premise"]).strip()
  if premise.endswith("."):
    premise = premise[:-1]
  connector = " because" if text(ex["question"]).strip() == "cause" else " therefore"
  prompt = premise + connector
  choices = [" " + prompt_text.lower_first(text(ex[k])) for k in ("choice1", "choice2")]
  return rank_item(prompt, prompt, choices, ex["label"])


@per_example
def rte(ex: Example):
  prompt = _nli_prompt(text(ex["premise"]), text(ex["hypothesis"]), "True or False?")
  return rank_item(prompt, prompt, (" True", " False"), ex["label"])  # ClassLabel: entailment, not_entailment


@per_example
def wic(ex: Example):
  prompt = (f"Sentence 1: {text(ex['sentence1']).strip()}\nSentence 2: {text(ex['sentence2']).strip()}\n"
            f"Question: Is the word '{text(ex['word']).strip()}' used in the same way in the two sentences "
            "above?\nAnswer:")
  return rank_item(prompt, prompt, _YES_NO, ex["label"])


@per_example
def wsc(ex: Example):
  """The pronoun is marked at its word index span2_index (*he*), as in GPT-3's WSC prompt."""
  pronoun, noun = text(ex["span2_text"]).strip(), text(ex["span1_text"]).strip()
  passage = prompt_text.mark_word(text(ex["text"]), int(ex["span2_index"]), pronoun)
  if passage is None or not noun:
    return None
  prompt = (f"Passage: {passage}\nQuestion: In the passage above, does the pronoun \"*{pronoun}*\" refer to "
            f"\"*{noun}*\"?\nAnswer:")
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
  """Each entity replaces @placeholder; the entity and the rest of the query are scored (not normalized).
  As in the official ReCoRD scorer, an entity is correct when it matches a gold answer after SQuAD normalization,
  and its `credit` is its best token F1 over the gold answers."""
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
  answers = texts(ex["answers"])
  if not entities or not answers:
    return None
  correct = tuple(i for i, e in enumerate(entities) if max(metrics.exact_match(e, a) for a in answers))
  if not correct:
    return None
  prompt = f"{passage}\n- {prefix}"
  space = ""
  if prompt.endswith(" "):  # the candidate starts with the space, as every candidate does
    prompt, space = prompt[:-1], " "
  return PromptItem(key=prompt + "\x1f" + query, prompts=(prompt,) * len(entities),
                    continuations=tuple(space + e + suffix for e in entities), correct=correct,
                    credit=tuple(max(metrics.token_f1(e, a) for a in answers) for e in entities))


@per_example
def anli(ex: Example):
  prompt = _nli_prompt(text(ex["context"]), text(ex["hypothesis"]), "True, False, or Neither?")
  # ClassLabel names ('e', 'n', 'c'): entailment, neutral, contradiction
  return rank_item(prompt, prompt, (" True", " Neither", " False"), ex["label"])
