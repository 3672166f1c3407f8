"""The defects real data exposed (issue 14), each on hand-written rows in the dataset's own format."""
import random

import pytest

from skip_t5x.data import fewshot, prompt_text, prompts_dialogue, prompts_nlg, prompts_nlu


def test_story_cloze_label_is_the_one_based_answer_right_ending():
  rows = [{"context": "Tom was hungry.", "endings": ["He ate.", "He flew."], "label": 1},
          {"context": "Amy was cold.", "endings": ["She swam.", "She wore a coat."], "label": 2},
          {"context": "No label here.", "endings": ["A.", "B."], "label": -1}]  # 2018 test split: no labels
  items = list(prompts_nlu.story_cloze(rows))
  assert [item.correct for item in items] == [(0,), (1,)]
  assert items[1].continuations[1] == " She wore a coat."
  # the embedded continuation task keeps its 0-based labels
  embedded = list(prompts_nlu.context_endings([{"context": "C.", "endings": ["x", "y"], "label": 1}]))
  assert embedded[0].correct == (1,)


def _quac_row(qid, question, answer, context="Ada was born in 1815. CANNOTANSWER"):
  return {"id": qid, "title": "Ada Lovelace", "section_title": "Early life", "context": context,
          "question": question, "answers": {"text": [answer]}, "orig_answer": {"text": answer}}


def test_quac_history_is_ordered_by_turn_index_and_holds_only_earlier_turns():
  rows = [_quac_row("C_aa_1_q#2", "Anything else?", "CANNOTANSWER"),
          _quac_row("C_bb_0_q#0", "Who was her father?", "Lord Byron"),  # another dialogue over the same text
          _quac_row("C_aa_1_q#0", "When was she born?", "1815"),
          _quac_row("C_aa_1_q#1", "Where?", "London")]
  random.Random(3).shuffle(rows)  # any file order gives the same items
  items = {item.key: item for item in prompts_dialogue.quac(rows)}
  assert sorted(items) == ["C_aa_1_q#0", "C_aa_1_q#1", "C_aa_1_q#2", "C_bb_0_q#0"]
  assert items["C_aa_1_q#0"].history == ()
  assert items["C_aa_1_q#1"].history == ("Q: When was she born?\nA: 1815\n\n",)
  assert items["C_aa_1_q#2"].prompts[0] == ("Ada Lovelace: Early life\n\nAda was born in 1815. CANNOTANSWER\n\n"
                                            "Q: When was she born?\nA: 1815\n\nQ: Where?\nA: London\n\n"
                                            "Q: Anything else?\nA:")
  assert items["C_bb_0_q#0"].history == ()  # nothing from dialogue C_aa
  assert prompts_dialogue.quac_turn_id({"id": "C_5ab583f64dbb47b995cf59328ea0af43_1_q#13"}) == (
      "C_5ab583f64dbb47b995cf59328ea0af43_1", 13)


def test_quac_rows_without_ids_get_no_history():
  rows = [{k: v for k, v in _quac_row("", q, a).items() if k != "id"}
          for q, a in [("Where?", "London"), ("When was she born?", "1815")]]  # hashed order: turn 1 first
  items = list(prompts_dialogue.quac(rows))
  assert [item.history for item in items] == [(), ()]
  assert "Where?" not in items[1].prompts[0] and "When was she born?" not in items[0].prompts[0]


def test_nli_hypothesis_ends_its_sentence():
  assert prompt_text.with_final_period(" the language was peeled down ") == "the language was peeled down."
  assert prompt_text.with_final_period("Is it?") == "Is it?"
  item = next(prompts_nlu.anli([{"context": "It rained.", "hypothesis": "The ground got wet", "label": 0}]))
  assert item.prompts[0] == "It rained.\nQuestion: The ground got wet. True, False, or Neither?\nAnswer:"


@pytest.mark.parametrize("option, pronoun, next_word, expected", [
    ("The city councilmen", "they", "feared", "the city councilmen"),  # mid-sentence: lower case
    ("the demonstrators", "they", "feared", "the demonstrators"),  # both options of a pair read the same way
    ("the man", "He", "was", "The man"),  # the pronoun starts the sentence
    ("Joan", "she", "had", "Joan"),  # names keep their case
    ("The man", "his", "shoulders.", "the man's"),  # possessive pronoun: possessive option
    ("The demonstrators", "their", "permit", "the demonstrators'"),
    ("Susan", "her", "daughter", "Susan's"),  # 'her' + noun: possessive
    ("Susan", "her", "for", "Susan"),  # 'her' as an object
])
def test_winograd_options_read_as_they_would_in_the_pronouns_place(option, pronoun, next_word, expected):
  assert prompt_text.option_in_place_of(option, pronoun, next_word) == expected


def test_wsc_marks_the_pronoun_at_its_word_index():
  text = "Bob met Tom and he said he would come."
  assert prompt_text.mark_word(text, 4, "he") == "Bob met Tom and *he* said he would come."
  assert prompt_text.mark_word(text, 6, "he") == "Bob met Tom and he said *he* would come."
  assert prompt_text.mark_word("Tom took her bag. He left.", 3, "He") == "Tom took her bag. *He* left."  # not 'her'
  assert prompt_text.mark_word("When it rained, it poured.", 3, "it") == "When it rained, *it* poured."
  assert prompt_text.mark_word("No pronoun here.", 1, "she") is None


def test_hellaswag_wikihow_tags_and_sentence_starts():
  assert prompt_text.hellaswag_clean("[header] How to sit [title] Find a chair. [step] sit   down.") == (
      "How to sit. Find a chair. sit down.")
  assert prompt_text.capitalize_sentences("a man waves. then he sits! she? ok e.g") == (
      "A man waves. Then he sits! She? Ok e.g")


def test_copa_keeps_the_pronoun_i_and_acronyms():
  assert prompt_text.lower_first("I shut off the light.") == "I shut off the light."
  assert prompt_text.lower_first("I'm late.") == "I'm late."
  assert prompt_text.lower_first("FBI agents came.") == "FBI agents came."
  assert prompt_text.lower_first("The sun was rising.") == "the sun was rising."


def test_drop_item_is_never_its_own_exemplar():
  row = {"query_id": "q-1", "passage": "The Bears scored 7 points.", "question": "How many points?", "answer": "7",
         "validated_answers": []}
  twin = {**row, "passage": "The Bears  scored 7 points.\n"}  # the same question, its text spaced differently
  other = {**row, "query_id": "q-2", "question": "Who scored?", "answer": "The Bears"}
  pool = list(prompts_nlg.drop([twin, other]))
  item = next(prompts_nlg.drop([row]))
  assert item.key == pool[0].key == "drop:q-1"
  assert {fewshot.choose_exemplar(item, pool, seed, "drop").key for seed in range(20)} == {"drop:q-2"}
