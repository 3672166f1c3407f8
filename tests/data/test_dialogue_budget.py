"""Dialogue prompts within the input budget (oldest turns dropped first) and per-task decode lengths."""
import pytest
import seqio
import tensorflow_datasets as tfds

from skip_t5x.data import fewshot, fewshot_tasks, prompts_dialogue
from skip_t5x.data import vocab as vocab_lib
from tests.data import fewshot_fixtures

_STORY = "Tom has a red ball."


def _words(text):
  return len(text.split())


def _coqa_items():
  row = {"story": _STORY, "questions": ["What does Tom have?", "What color is it?", "Is it big?"],
         "answers": {"input_text": ["a ball", "red", "no"]}}
  shot = {"story": "Sue likes tea.", "questions": ["What does Sue like?", "When?"],
          "answers": {"input_text": ["tea", "in the morning"]}}
  return list(prompts_dialogue.coqa([row])), list(prompts_dialogue.coqa([shot]))


def test_history_turns_are_dropped_oldest_first_exemplar_first():
  items, shots = _coqa_items()
  item, exemplar = items[2], shots[1]  # item: 2 earlier turns; exemplar: 1 earlier turn
  exemplar_full = "Sue likes tea.\n\nQ: What does Sue like?\nA: tea\n\nQ: When?\nA: in the morning"
  exemplar_bare = "Sue likes tea.\n\nQ: When?\nA: in the morning"
  item_full = f"{_STORY}\n\nQ: What does Tom have?\nA: a ball\n\nQ: What color is it?\nA: red\n\nQ: Is it big?\nA:"
  item_last_turn = f"{_STORY}\n\nQ: What color is it?\nA: red\n\nQ: Is it big?\nA:"
  item_bare = f"{_STORY}\n\nQ: Is it big?\nA:"
  # budgets in words (the counter here): each result is the longest that fits
  sep = fewshot.SEPARATOR
  cases = [(None, exemplar_full, item_full), (1000, exemplar_full, item_full),
           (_words(exemplar_bare + sep + item_full), exemplar_bare, item_full),
           (_words(exemplar_bare + sep + item_last_turn), exemplar_bare, item_last_turn),
           (_words(exemplar_bare + sep + item_bare), exemplar_bare, item_bare),
           (3, exemplar_bare, item_bare)]  # nothing fits: no history, truncate_inputs_left cuts the start
  for budget, expected_exemplar, expected_item in cases:
    assert fewshot.fit_dialogue_history(exemplar, item, budget, _words) == (
        expected_exemplar + fewshot.SEPARATOR + expected_item), budget


def test_task_fits_dialogue_prompts_to_the_input_length():
  vocabulary = vocab_lib.vocabulary()
  story = fewshot_fixtures.fixtures_nlg._COTTON  # pylint: disable=protected-access
  exemplar = "Sue likes tea. She drinks it every morning.\n\nQ: What does Sue like?\nA: tea"
  without_oldest = (f"{exemplar}\n\n{story}\n\nQ: Where did she live?\nA: in a barn\n\n"
                    "Q: Did she live alone?\nA:")
  budget = len(vocabulary.encode(without_oldest))  # too short for the turn 'What color was Cotton?'
  with tfds.testing.mock_data(as_dataset_fn=fewshot_fixtures.as_dataset):
    task = seqio.get_mixture_or_task("fewshot_1shot_coqa")
    rows = list(task.get_dataset({"inputs": budget, "targets": 16}, split="validation", shuffle=False,
                                 try_in_mem_cache=False).as_numpy_iterator())
  last = rows[2]
  assert last["inputs_pretokenized"].decode() == without_oldest
  assert len(last["inputs"]) == budget
  assert rows[0]["inputs_pretokenized"].decode().endswith("Q: What color was Cotton?\nA:")


def test_decode_lengths_per_task_and_mixture():
  assert fewshot_tasks.SUITE["quac"].max_decode_length == 96
  assert fewshot_tasks.SUITE["coqa"].max_decode_length == 64
  assert fewshot_tasks.SUITE["trivia_qa"].max_decode_length == fewshot_tasks.DEFAULT_DECODE_LENGTH == 32
  assert fewshot_tasks.max_decode_length("fewshot_1shot_quac") == 96
  assert fewshot_tasks.max_decode_length("fewshot_1shot_nlg") == 96  # the most any generation task needs
  assert fewshot_tasks.max_decode_length("fewshot_1shot_paper24") == 48  # squad_v2 (QuAC/CoQA not in the 24)
  assert fewshot_tasks.max_decode_length("fewshot_1shot_boolq", default=7) == 7  # rank classification
  assert fewshot_tasks.max_decode_length("no_such_task", default=5) == 5


def test_long_quac_answers_fit_the_quac_decode_length():
  # A QuAC answer span of 30 words (the length the answers reach) with the shipped vocabulary.
  answer = ("In 1843 she translated an article by the Italian engineer Luigi Menabrea on the Analytical Engine and "
            "added her own notes, which included what many regard as the first computer program.")
  assert len(answer.split()) == 31
  tokens = len(vocab_lib.vocabulary().encode(" " + answer))
  assert fewshot_tasks.DEFAULT_DECODE_LENGTH < tokens <= fewshot_tasks.SUITE["quac"].max_decode_length


def test_prompt_keeping_drops_only_history_turns():
  items, _ = _coqa_items()
  item = items[2]
  assert item.history == ("Q: What does Tom have?\nA: a ball\n\n", "Q: What color is it?\nA: red\n\n")
  assert item.prompt_keeping(2) == item.prompts[0]
  assert item.prompt_keeping(1) == f"{_STORY}\n\nQ: What color is it?\nA: red\n\nQ: Is it big?\nA:"
  assert item.prompt_keeping(0) == f"{_STORY}\n\nQ: Is it big?\nA:"
  with pytest.raises(ValueError, match="history is not in prompts"):
    type(item)(key="k", prompts=("no history here",), continuations=(" a",), correct=(0,), answers=("a",),
               history=("Q: x\nA: y\n\n",), history_at=0)
