"""The offline embedded 1-shot tasks: record construction from held-out text."""
import random

import pytest

from skip_t5x.data import embedded_corpus, embedded_eval

PARAGRAPHS = [
    ("doc/a", "The parser reads one token at a time. It stops at the first error it finds in the input."),
    ("doc/b", "A queue holds items in order of arrival. Items leave from the front and join at the back."),
    ("doc/c", "Every module has a name and a dictionary. The name is stored in an attribute called name."),
    ("doc/d", "Threads share all the memory of their process. Locks keep two threads from writing one value."),
]


def test_swapped_word_distractors_swap_one_adjacent_pair():
  sentence = "It stops at the first error it finds"
  distractors = embedded_eval.swapped_word_distractors(sentence, random.Random(0))
  assert len(distractors) == 3 and len(set(distractors)) == 3 and sentence not in distractors
  words = sentence.split()
  for d in distractors:
    other = d.split()
    assert sorted(other) == sorted(words)  # same words: only the order differs
    changed = [i for i in range(len(words)) if words[i] != other[i]]
    assert len(changed) == 2 and changed[1] == changed[0] + 1  # one adjacent pair swapped
  assert embedded_eval.swapped_word_distractors("one one one one", random.Random(0)) == []


@pytest.mark.parametrize("distractors", embedded_eval.DISTRACTORS)
def test_continuation_records_hold_the_true_sentence_once(distractors):
  records = embedded_eval.continuation_records(PARAGRAPHS, seed=0, distractors=distractors)
  assert len(records) == 4
  truths = {ctx: nxt for _, ctx, nxt in embedded_eval.next_sentence_pairs(PARAGRAPHS)}
  for record in records:
    endings = record["endings"]
    assert len(endings) == 4 and len(set(endings)) == 4
    assert endings[record["label"]] == truths[record["context"]]
  assert records == embedded_eval.continuation_records(PARAGRAPHS, seed=0, distractors=distractors)  # seeded
  labels = [r["label"] for r in embedded_eval.continuation_records(PARAGRAPHS * 8, 1, distractors)]
  assert len(set(labels)) > 1  # the true sentence is not always in one slot


def test_embedded_records_come_from_held_out_documents():
  held_out = embedded_corpus.documents_for_split("validation")
  paragraphs = embedded_eval.prose_paragraphs(held_out)
  held_out_text = " ".join(" ".join(d.text.split()) for d in held_out)
  records = embedded_eval.continuation_records(paragraphs, seed=0)
  assert len(records) >= 200
  assert all(r["context"] in held_out_text for r in records[:50])
  passages = embedded_eval.lambada_records(paragraphs)
  assert len(passages) >= 200
  for record in passages[:50]:
    *context, last = record["passage"].split()
    assert last.lower() in {w.strip(".,;:!?()\"'").lower() for w in context}


def test_bad_distractor_kind_is_named():
  with pytest.raises(ValueError, match="distractors='shuffled'"):
    embedded_eval.embedded_eval_options(distractors="shuffled")
