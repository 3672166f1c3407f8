"""Offline 1-shot tasks built from the embedded corpus's held-out documents (no download needed).

- `embedded_1shot_lambada` (NLG): a LAMBADA-style passage; the model generates the last word. As in LAMBADA, the
  word also occurs earlier in the passage, so a model that tracks its context can get it.
- `embedded_1shot_continuation` (NLU): the start of a paragraph and 4 candidate next sentences, ranked by
  length-normalized log-likelihood; chance is 25%. Besides the true next sentence, the 3 distractors are by default
  copies of it with one pair of adjacent words swapped (seeded), or with `distractors='other_documents'` next
  sentences of other held-out documents.
Evaluated items come from held-out documents ('validation'); exemplars from train documents ('shot'). Both go
through the same machinery as the TFDS suite. Mixture: `embedded_fewshot`.
"""
from __future__ import annotations

import functools
import random
import re
from typing import Dict, List, Tuple

import gin
import seqio
import tensorflow as tf

from skip_t5x.data import embedded_corpus, fewshot_tasks, metrics, prompts_nlg, prompts_nlu
from skip_t5x.data.fewshot_tasks import TaskSpec

MIXTURE = "embedded_fewshot"
_SPLIT_DOCS = {"validation": "validation", "shot": "train"}  # task split -> corpus split
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"^[A-Za-z]{4,}$")


# Distractors of the continuation task. 'swapped_words' tests the word order a small LM learns first and stays
# informative as models grow (accuracy climbs from 25% toward 100%); 'other_documents' (sentences of other held-out
# documents, which read fluently) needs a model that uses its context and stays near chance for small ones.
DISTRACTORS = ("swapped_words", "other_documents")


@gin.configurable
def embedded_eval_options(max_items: int = 400, seed: int = 0, distractors: str = "swapped_words") -> dict:
  """Gin knobs: items evaluated per embedded task, the seed of distractor choice and order, and the kind of
  continuation distractors (DISTRACTORS)."""
  if max_items < 1:
    raise ValueError(f"embedded_eval_options.max_items must be >= 1, got {max_items}")
  if distractors not in DISTRACTORS:
    raise ValueError(f"embedded_eval_options.distractors={distractors!r} must be one of {list(DISTRACTORS)}")
  return {"max_items": int(max_items), "seed": int(seed), "distractors": distractors}


def prose_paragraphs(documents) -> List[Tuple[str, str]]:
  """(doc_id, whitespace-collapsed paragraph) for paragraphs that read as prose: at least 12 words, mostly
  letters, no interpreter sessions."""
  out = []
  for doc in documents:
    for para in re.split(r"\n\s*\n", doc.text):
      if ">>>" in para:
        continue
      words = para.split()
      nonspace = sum(not c.isspace() for c in para)
      if len(words) < 12 or sum(c.isalpha() for c in para) < 0.8 * nonspace:
        continue
      out.append((doc.doc_id, " ".join(words)))
  return out


def lambada_passage(paragraph: str, max_words: int = 60, min_context: int = 10):
  """The longest prefix (<= max_words words) whose last word has 4+ letters and occurred earlier; None if none."""
  words = paragraph.split()
  for end in range(min(len(words), max_words), min_context, -1):
    last = words[end - 1].rstrip(".,;:!?)\"'")
    if _WORD.match(last) and last.lower() in {w.strip(".,;:!?()\"'").lower() for w in words[:end - 1]}:
      return " ".join(words[:end - 1] + [last])
  return None


def lambada_records(paragraphs: List[Tuple[str, str]]) -> List[Dict[str, str]]:
  return [{"passage": p} for p in (lambada_passage(text) for _, text in paragraphs) if p]


def next_sentence_pairs(paragraphs: List[Tuple[str, str]]) -> List[Tuple[str, str, str]]:
  """(doc_id, context, next sentence): a paragraph's first sentences (>= 8 words) and the sentence after them."""
  pairs = []
  for doc_id, text in paragraphs:
    sentences = _SENTENCE_END.split(text)
    context, rest = sentences[0], sentences[1:]
    while rest and len(context.split()) < 8:
      context, rest = context + " " + rest[0], rest[1:]
    if rest and 4 <= len(rest[0].split()) <= 40 and len(context.split()) <= 80:
      pairs.append((doc_id, context, rest[0]))
  return pairs


def swapped_word_distractors(sentence: str, rng: random.Random, count: int = 3) -> List[str]:
  """`count` different copies of `sentence`, each with one pair of adjacent (differing) words swapped; fewer when
  the sentence has too few such pairs."""
  words = sentence.split()
  positions = [i for i in range(len(words) - 1) if words[i] != words[i + 1]]
  out = []
  for i in rng.sample(positions, len(positions)):
    swapped = words[:i] + [words[i + 1], words[i]] + words[i + 2:]
    candidate = " ".join(swapped)
    if candidate != sentence and candidate not in out:
      out.append(candidate)
    if len(out) == count:
      break
  return out


def continuation_records(paragraphs: List[Tuple[str, str]], seed: int,
                         distractors: str = "swapped_words") -> List[dict]:
  """{'context', 'endings' (4), 'label'}: the true next sentence plus 3 distractors (see DISTRACTORS)."""
  pairs = next_sentence_pairs(paragraphs)
  records = []
  for i, (doc_id, context, ending) in enumerate(pairs):
    rng = random.Random(embedded_corpus.stable_hash(f"{seed}:{i}:{context}"))
    if distractors == "swapped_words":
      wrong = swapped_word_distractors(ending, rng)
    else:
      others = [p[2] for p in pairs if p[0] != doc_id and p[2] != ending]
      wrong = rng.sample(others, 3) if len(others) >= 3 else []
    if len(wrong) < 3:
      continue
    endings = wrong + [ending]
    rng.shuffle(endings)
    records.append({"context": context, "endings": endings, "label": endings.index(ending)})
  return records


@functools.lru_cache(maxsize=8)
def _records(kind: str, split: str, seed: int, distractors: str) -> tuple:
  paragraphs = prose_paragraphs(embedded_corpus.documents_for_split(_SPLIT_DOCS[split]))
  if kind == "lambada":
    return tuple(lambada_records(paragraphs))
  records = continuation_records(paragraphs, seed, distractors)
  return tuple(records)


def records_dataset(kind: str, split: str) -> tf.data.Dataset:
  if split not in _SPLIT_DOCS:
    raise ValueError(f"embedded eval tasks have splits {sorted(_SPLIT_DOCS)}, got {split!r}")
  options = embedded_eval_options()
  records = _records(kind, split, options["seed"], options["distractors"])
  if not records:
    raise ValueError(f"embedded {kind} task: no {split} records could be built from the corpus")
  if kind == "lambada":
    return tf.data.Dataset.from_tensor_slices({"passage": [r["passage"] for r in records]})
  return tf.data.Dataset.from_tensor_slices({
      "context": [r["context"] for r in records],
      "endings": [r["endings"] for r in records],
      "label": [r["label"] for r in records],
  })


def _dataset_fn_for(kind: str):
  def dataset_fn(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
    del shuffle_files, seed  # evaluation order is the corpus order; the seed is embedded_eval_options.seed
    return records_dataset(kind, split)

  return dataset_fn


EMBEDDED_SPECS = {
    "lambada": TaskSpec(name="embedded_lambada", kind="NLG", formatter=prompts_nlg.lambada,
                        metric_fn=metrics.lambada_metric, answer_fn=prompts_nlg.first_word,
                        primary_metric="exact_match", targets_with_context=True,
                        registered_name="embedded_1shot_lambada"),
    "continuation": TaskSpec(name="embedded_continuation", kind="NLU", formatter=prompts_nlu.context_endings,
                             metric_fn=functools.partial(fewshot_tasks.rank_classification.accuracy,
                                                         length_normalize=True),
                             primary_metric="accuracy", registered_name="embedded_1shot_continuation"),
}


def register_all() -> None:
  for kind, spec in EMBEDDED_SPECS.items():
    source = seqio.FunctionDataSource(_dataset_fn_for(kind), splits=tuple(_SPLIT_DOCS))
    fewshot_tasks.register_one_shot_task(
        spec, source,
        shot_dataset_fn=functools.partial(records_dataset, kind, "shot"),
        max_items=lambda: embedded_eval_options()["max_items"])
  fewshot_tasks.register_mixture(MIXTURE, [s.task_name for s in EMBEDDED_SPECS.values()])


register_all()
