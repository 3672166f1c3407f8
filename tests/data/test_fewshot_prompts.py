"""Every TFDS-backed 1-shot task under tfds.testing.mock_data: golden prompts on fixed examples, exemplar rules."""
import json

import pytest
import seqio
import tensorflow_datasets as tfds

from skip_t5x.data import fewshot, fewshot_tasks
from skip_t5x.data.prompt_items import PromptItem
from tests.data import fewshot_fixtures

Q = "\nQuestion: "
TF_NEITHER = " True, False or Neither?\nAnswer:"

# task -> (idx of the checked item, exemplar demonstration, item prompt(s), targets, correct candidates | answers)
GOLDEN = {
    "trivia_qa": (0, "Q: What is the capital of France?\nA: Paris", "Q: Who wrote Hamlet?\nA:",
                  [" William Shakespeare"], ["William Shakespeare", "Shakespeare", "william shakespeare",
                                             "shakespeare"]),
    "natural_questions": (0, "Q: how many legs does a spider have\nA: eight", "Q: where is the eiffel tower\nA:",
                          [" Paris"], ["Paris", "paris, france"]),
    "web_questions": (0, "Q: who is the president of france?\nA: Emmanuel Macron",
                      "Q: what language do they speak in brazil?\nA:", [" Portuguese Language"],
                      ["Portuguese Language"]),
    "squad_v2": (0, "Title: Moon\n\nBackground: The Moon orbits Earth.\n\nQ: What orbits Mars?\n\nA: unanswerable",
                 "Title: Water\n\nBackground: Water boils at 100 degrees.\n\n"
                 "Q: At what temperature does water boil?\n\nA:", [" 100 degrees"], ["100 degrees"]),
    "lambada": (0, "The sun rose over the quiet hills", "He fed the cat every morning because he loved the",
                [" cat"], ["cat"]),
    "drop": (0, "Passage: Smith kicked a 45-yard field goal.\nQuestion: How long was the field goal?\n"
                "Answer: 45-yard",
             "Passage: The Bears scored 7 points in the first quarter and 3 in the second.\n"
             "Question: How many points did the Bears score in total?\nAnswer:", [" 10"], ["10", "ten"]),
    "quac": (1, "Alan Turing: Career\n\nTuring worked at Bletchley Park.\n\nQ: Where did Turing work?\n"
                "A: Bletchley Park",
             "Ada Lovelace: Early life\n\nAda was born in 1815 in London. CANNOTANSWER\n\n"
             "Q: When was Ada born?\nA: in 1815\n\nQ: Where?\nA:", [" in London"], ["in London"]),
    "coqa": (1, "Sue likes tea.\n\nQ: What does Sue like?\nA: tea",
             "Tom has a red ball.\n\nQ: What does Tom have?\nA: a ball\n\nQ: What color is it?\nA:", [" red"],
             ["red"]),
    "hellaswag": (0, "Running: A man ties his shoes. He starts to run.", "Baking: A woman puts a cake in the oven.",
                  [" She waits for it to bake.", " She swims."], [0]),
    "story_cloze": (0, "Amy lost her keys. She searched everywhere. She found them in her bag.",
                    "Jim was hungry. He went to the kitchen.", [" He made a sandwich.",
                                                                 " He went to sleep on the roof."], [0]),
    "winograd": (0, "Joan thanked Susan for the help Susan had given.",
                 ["The trophy does not fit in the suitcase because the trophy",
                  "The trophy does not fit in the suitcase because the suitcase"], [" is too big."] * 2, [0]),
    "winogrande": (0, "The ice melted because the sun was hot.",
                   ["Sarah lent Maria money because Sarah", "Sarah lent Maria money because Maria"],
                   [" was rich."] * 2, [0]),
    "piqa": (0, "Question: Dry wet hands\nAnswer: Use a towel.", "Question: Open a jar\nAnswer:",
             [" Twist the lid.", " Eat the lid."], [0]),
    "arc_easy": (0, "Question: What do plants need?\nAnswer: sunlight", "Question: Which is a mammal?\nAnswer:",
                 [" shark", " whale", " trout", " eel"], [1]),
    "arc_challenge": (0, "Question: What do plants need?\nAnswer: sunlight", "Question: What causes tides?\nAnswer:",
                      [" the Moon", " the wind"], [0]),
    "openbookqa": (0, "Water freezes at 0 C", "The sun is a", [" star", " planet", " moon", " comet"], [0]),
    "race_m": (0, "Article: Lily reads every day.\n\nQuestion: What does Lily do every day?\nAnswer: Reads.",
               "Article: Tom went to school by bus.\n\nQuestion: How did Tom go to school?\nAnswer:",
               [" By bus.", " By car.", " On foot.", " By bike."], [0]),
    "race_h": (0, "Article: Lily reads every day.\n\nQuestion: What does Lily do every day?\nAnswer: Reads.",
               "Article: The museum opened in 1990.\n\nQuestion: When did the museum open?\nAnswer:",
               [" In 1980.", " In 1990.", " In 2000.", " In 2010."], [1]),
    "boolq": (0, "Fish live in water." + Q + "do fish live on land?\nAnswer: no",
              "Cats are mammals." + Q + "are cats mammals?\nAnswer:", [" no", " yes"], [1]),
    "cb": (0, "He is asleep." + Q + "He is awake." + TF_NEITHER + " False",
           "It is raining." + Q + "The ground is wet." + TF_NEITHER, [" True", " False", " Neither"], [2]),
    "copa": (0, "I tipped the bottle therefore the liquid spilled.", "The man broke his toe because",
             [" he dropped a hammer on his foot.", " he got a hole in his sock."], [0]),
    "rte": (0, "The cat sleeps." + Q + "The cat runs. True or False?\nAnswer: False",
            "Paris is in France." + Q + "Paris is in Europe. True or False?\nAnswer:", [" True", " False"], [0]),
    "wic": (0, "Sentence 1: I run daily.\nSentence 2: They run fast.\nQuestion: Is the word 'run' used in the same "
               "way in the two sentences above?\nAnswer: yes",
            "Sentence 1: He sat on the bank of the river.\nSentence 2: She works at the bank.\nQuestion: Is the word "
            "'bank' used in the same way in the two sentences above?\nAnswer:", [" no", " yes"], [0]),
    "wsc": (0, "Passage: The dog chased the cat because it was hungry.\nQuestion: In the passage above, does the "
               "pronoun \"it\" refer to The cat?\nAnswer: no",
            "Passage: Mark told Pete he was late.\nQuestion: In the passage above, does the pronoun \"he\" refer to "
            "Mark?\nAnswer:", [" no", " yes"], [1]),
    "multirc": (0, "Ann ate an apple." + Q + "What did Ann eat?\nIs \"A pear\" a correct answer?\nAnswer: no",
                "Bob has two dogs." + Q + "How many dogs does Bob have?\nIs \"Two\" a correct answer?\nAnswer:",
                [" no", " yes"], [1]),
    "record": (0, "Rome is old.\n- History\n- Tourists love Rome.", "Obama visited Paris.\n- The trip was short\n- ",
               ["Obama flew home.", "Paris flew home."], [0]),
    "anli_r1": (0, "Dogs bark." + Q + "Dogs meow." + TF_NEITHER + " False",
                "The sky is blue." + Q + "The sky has a color." + TF_NEITHER, [" True", " Neither", " False"], [0]),
}
GOLDEN["anli_r2"] = GOLDEN["anli_r3"] = GOLDEN["anli_r1"]


def _task_rows(task_name):
  with tfds.testing.mock_data(as_dataset_fn=fewshot_fixtures.as_dataset):
    task = seqio.get_mixture_or_task(task_name)
    dataset = task.get_dataset(None, split="validation", shuffle=False, try_in_mem_cache=False)
    return list(dataset.as_numpy_iterator()), task


def test_golden_table_covers_the_suite():
  assert sorted(GOLDEN) == sorted(fewshot_tasks.SUITE) and len(GOLDEN) == 29
  assert sum(s.in_paper24 for s in fewshot_tasks.SUITE.values()) == 24


@pytest.mark.parametrize("name", sorted(fewshot_tasks.SUITE))
def test_golden_prompts_under_mock_data(name):
  spec = fewshot_tasks.SUITE[name]
  idx, demonstration, prompts, targets, expected = GOLDEN[name]
  rows, task = _task_rows(spec.task_name)
  rows = [r for r in rows if int(r["idx"]) == idx]
  prompts = prompts if isinstance(prompts, list) else [prompts] * len(targets)
  assert [r["inputs_pretokenized"].decode() for r in rows] == [demonstration + "\n\n" + p for p in prompts]
  assert [r["targets_pretokenized"].decode() for r in rows] == targets
  vocabulary = task.output_features["inputs"].vocabulary
  for row in rows:  # tokens are the tokenized text (no truncation at these lengths)
    assert vocabulary.decode(row["targets"].tolist()) == vocabulary.decode(
        vocabulary.encode(row["targets_pretokenized"].decode()))
  if spec.kind == "NLG":
    assert json.loads(rows[0]["answers_json"]) == expected
    expected_answer = "Paris city" if spec.answer_fn.__name__ == "first_line" else "Paris"
    assert task.postprocess_fn(" Paris city\nQ: next", example=rows[0], is_target=False) == expected_answer
    target = task.postprocess_fn("", example=rows[0], is_target=True)
    if spec.targets_with_context:  # LAMBADA: the passage rides along for the random-context-word chance
      assert target == {"answers": expected, "context": prompts[0]}
    else:
      assert target == expected
  else:
    assert [i for i, r in enumerate(rows) if r["is_correct"]] == expected
    assert [int(r["candidate"]) for r in rows] == list(range(len(targets)))
    assert all(int(r["num_candidates"]) == len(targets) for r in rows)
    assert all(int(r["num_target_tokens"]) == len(r["targets"]) > 0 for r in rows)


def test_exemplar_is_never_the_evaluated_example():
  rows, _ = _task_rows("fewshot_1shot_winograd")  # exemplars come from the evaluated split itself
  by_idx = {}
  for r in rows:
    by_idx.setdefault(int(r["idx"]), r["inputs_pretokenized"].decode())
  assert by_idx[0].startswith("Joan thanked Susan for the help Susan had given.\n\n")
  assert by_idx[1].startswith("The trophy does not fit in the suitcase because the trophy is too big.\n\n")


def _items(n):
  return [PromptItem(key=f"k{i}", prompts=(f"p{i}",), continuations=(" c",), correct=(0,)) for i in range(n)]


def test_exemplar_choice_is_stable_seeded_and_excludes_self():
  pool = _items(50)
  evaluated = pool[:30]
  first = [fewshot.choose_exemplar(item, pool, seed=0, task_name="t").key for item in evaluated]
  again = [fewshot.choose_exemplar(item, pool[::-1][::-1], seed=0, task_name="t").key for item in evaluated]
  other_seed = [fewshot.choose_exemplar(item, pool, seed=1, task_name="t").key for item in evaluated]
  assert first == again
  assert first != other_seed
  assert all(choice != item.key for choice, item in zip(first + other_seed, evaluated * 2))
  assert len(set(first)) > 10  # spread over the pool, not one fixed exemplar
  # the choice depends on the item, not on its position in the evaluated split
  assert fewshot.choose_exemplar(evaluated[7], pool, 0, "t").key == first[7]
  with pytest.raises(ValueError, match="every exemplar in the pool is the evaluated item"):
    fewshot.choose_exemplar(pool[0], pool[:1], 0, "t")


def test_random_mock_data_is_handled_or_named():
  """Random mock examples (labels out of range, missing blanks) are dropped; an empty result names the task."""
  with tfds.testing.mock_data(num_examples=4):
    rows = list(seqio.get_mixture_or_task("fewshot_1shot_piqa").get_dataset(
        None, split="validation", shuffle=False, try_in_mem_cache=False).as_numpy_iterator())
    assert len(rows) == 8 and sum(bool(r["is_correct"]) for r in rows) == 4
    with pytest.raises(ValueError, match="fewshot_1shot_winogrande: no usable examples"):
      seqio.get_mixture_or_task("fewshot_1shot_winogrande").get_dataset(
          None, split="validation", shuffle=False, try_in_mem_cache=False)


def test_missing_dataset_error_says_how_to_prepare(tmp_path):
  from skip_t5x.data import sources
  source = sources.PreparedTfdsSource("piqa:1.0.0", splits={"validation": "validation"})
  source.tfds_dataset.override_data_dir(str(tmp_path))
  with pytest.raises(sources.DatasetNotPreparedError, match=r"tfds build piqa --data_dir=" + str(tmp_path)):
    source.get_dataset("validation", shuffle=False)
