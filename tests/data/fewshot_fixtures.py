"""Fixed raw examples for every TFDS-backed 1-shot task, served through tfds.testing.mock_data.

FIXTURES[task] = {'eval': [...], 'shot': [...]} in the builder's feature structure; fields a prompt does not use
are filled with empty values by `complete`, and the TFDS feature spec checks every example's structure and types.
"""
import numpy as np
import tensorflow as tf

from skip_t5x.data import fewshot_tasks


def _wsc273(text, pronoun, option1, option2, label):
  start = text.index(" " + pronoun + " ") + 1
  return {"text": text, "pronoun_text": pronoun, "pronoun_start": start, "pronoun_end": start + len(pronoun),
          "option1": option1, "option2": option2, "label": label}


def _arc(question, choices, answer):
  return {"question": question, "choices": {"text": choices, "label": list(range(len(choices)))},
          "answerKey": answer}


def _race(article, question, options, answer):
  return {"article": article, "questions": [question], "options": [options], "answers": [answer]}


_ANLI = {"eval": [{"context": "The sky is blue.", "hypothesis": "The sky has a color.", "label": 0}],
         "shot": [{"context": "Dogs bark.", "hypothesis": "Dogs meow.", "label": 2}]}
_ARC_SHOT = [_arc("What do plants need?", ["sunlight", "darkness"], 0)]

FIXTURES = {
    "trivia_qa": {
        "eval": [{"question": "Who wrote Hamlet?",
                  "answer": {"value": "William Shakespeare", "aliases": ["Shakespeare"],
                             "normalized_aliases": ["william shakespeare", "shakespeare"]}}],
        "shot": [{"question": "What is the capital of France?",
                  "answer": {"value": "Paris", "aliases": ["Paris"], "normalized_aliases": ["paris"]}}]},
    "natural_questions": {
        "eval": [{"question": "where is the eiffel tower", "answer": ["Paris", "paris, france"]}],
        "shot": [{"question": "how many legs does a spider have", "answer": ["eight", "8"]}]},
    "web_questions": {
        "eval": [{"question": "what language do they speak in brazil?", "answers": ["Portuguese Language"]}],
        "shot": [{"question": "who is the president of france?", "answers": ["Emmanuel Macron"]}]},
    "squad_v2": {
        "eval": [{"id": "e1", "title": "Water", "context": "Water boils at 100 degrees.",
                  "question": "At what temperature does water boil?", "is_impossible": False,
                  "answers": {"text": ["100 degrees"], "answer_start": [15]}}],
        "shot": [{"id": "s1", "title": "Moon", "context": "The Moon orbits Earth.", "question": "What orbits Mars?",
                  "is_impossible": True, "answers": {"text": [], "answer_start": []},
                  "plausible_answers": {"text": ["The Moon"], "answer_start": [0]}}]},
    "lambada": {
        "eval": [{"passage": "He fed the cat every morning because he loved the cat"}],
        "shot": [{"passage": "The sun rose over the quiet hills"}]},
    "drop": {
        "eval": [{"query_id": "q1", "passage": "The Bears scored 7 points in the first quarter and 3 in the second.",
                  "question": "How many points did the Bears score in total?", "answer": "10",
                  "validated_answers": ["10", "ten"]}],
        "shot": [{"query_id": "q0", "passage": "Smith kicked a 45-yard field goal.",
                  "question": "How long was the field goal?", "answer": "45-yard", "validated_answers": []}]},
    "quac": {
        "eval": [{"title": "Ada Lovelace", "section_title": "Early life",
                  "context": "Ada was born in 1815 in London. CANNOTANSWER", "question": "When was Ada born?",
                  "answers": {"text": ["1815"], "answer_start": [16]},
                  "orig_answer": {"text": "in 1815", "answer_start": 13}},
                 {"title": "Ada Lovelace", "section_title": "Early life",
                  "context": "Ada was born in 1815 in London. CANNOTANSWER", "question": "Where?",
                  "answers": {"text": ["in London"], "answer_start": [21]},
                  "orig_answer": {"text": "in London", "answer_start": 21}}],
        "shot": [{"title": "Alan Turing", "section_title": "Career", "context": "Turing worked at Bletchley Park.",
                  "question": "Where did Turing work?", "answers": {"text": ["Bletchley Park"], "answer_start": [17]},
                  "orig_answer": {"text": "at Bletchley Park", "answer_start": 14}}]},
    "coqa": {
        "eval": [{"story": "Tom has a red ball.", "questions": ["What does Tom have?", "What color is it?"],
                  "answers": {"input_text": ["a ball", "red"], "answer_start": [0, 0], "answer_end": [0, 0]}}],
        "shot": [{"story": "Sue likes tea.", "questions": ["What does Sue like?"],
                  "answers": {"input_text": ["tea"], "answer_start": [0], "answer_end": [0]}}]},
    "hellaswag": {
        "eval": [{"activity_label": "Baking", "context": "A woman puts a cake in the oven.",
                  "endings": ["She waits for it to bake.", "She swims."], "label": 0}],
        "shot": [{"activity_label": "Running", "context": "A man ties his shoes.",
                  "endings": ["He starts to run.", "He eats shoes."], "label": 0}]},
    "story_cloze": {
        "eval": [{"context": "Jim was hungry. He went to the kitchen.",
                  "endings": ["He made a sandwich.", "He went to sleep on the roof."], "label": 0}],
        "shot": [{"context": "Amy lost her keys. She searched everywhere.",
                  "endings": ["She found them in her bag.", "She bought a boat."], "label": 0}]},
    "winograd": {  # one split: each example's exemplar must be the other one
        "eval": [_wsc273("The trophy does not fit in the suitcase because it is too big.", "it", "the trophy",
                         "the suitcase", 0),
                 _wsc273("Joan thanked Susan for the help she had given.", "she", "Joan", "Susan", 1)],
        "shot": None},
    "winogrande": {
        "eval": [{"sentence": "Sarah lent Maria money because _ was rich.", "option1": "Sarah", "option2": "Maria",
                  "label": 0}],
        "shot": [{"sentence": "The ice melted because _ was hot.", "option1": "the sun", "option2": "the ice",
                  "label": 0}]},
    "piqa": {
        "eval": [{"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat the lid.", "label": 0}],
        "shot": [{"goal": "Dry wet hands", "sol1": "Use a towel.", "sol2": "Use water.", "label": 0}]},
    "arc_easy": {"eval": [_arc("Which is a mammal?", ["shark", "whale", "trout", "eel"], 1)], "shot": _ARC_SHOT},
    "arc_challenge": {"eval": [_arc("What causes tides?", ["the Moon", "the wind"], 0)], "shot": _ARC_SHOT},
    "openbookqa": {
        "eval": [{"question": {"stem": "The sun is a", "choice_A": "star", "choice_B": "planet", "choice_C": "moon",
                               "choice_D": "comet"}, "answerKey": 0}],
        "shot": [{"question": {"stem": "Water freezes at", "choice_A": "0 C", "choice_B": "50 C",
                               "choice_C": "100 C", "choice_D": "200 C"}, "answerKey": 0}]},
    "race_m": {
        "eval": [_race("Tom went to school by bus.", "How did Tom go to school?",
                       ["By bus.", "By car.", "On foot.", "By bike."], "A")],
        "shot": [_race("Lily reads every day.", "What does Lily do every day?",
                       ["Reads.", "Swims.", "Sings.", "Runs."], "A")]},
    "race_h": {
        "eval": [_race("The museum opened in 1990.", "When did the museum open?",
                       ["In 1980.", "In 1990.", "In 2000.", "In 2010."], "B")],
        "shot": [_race("Lily reads every day.", "What does Lily do every day?",
                       ["Reads.", "Swims.", "Sings.", "Runs."], "A")]},
    "boolq": {
        "eval": [{"passage": "Cats are mammals.", "question": "are cats mammals", "label": 1}],
        "shot": [{"passage": "Fish live in water.", "question": "do fish live on land", "label": 0}]},
    "cb": {
        "eval": [{"premise": "It is raining.", "hypothesis": "The ground is wet.", "label": 2}],
        "shot": [{"premise": "He is asleep.", "hypothesis": "He is awake.", "label": 1}]},
    "copa": {
        "eval": [{"premise": "The man broke his toe.", "question": "cause",
                  "choice1": "He dropped a hammer on his foot.", "choice2": "He got a hole in his sock.", "label": 0}],
        "shot": [{"premise": "I tipped the bottle.", "question": "effect", "choice1": "The liquid spilled.",
                  "choice2": "The bottle broke.", "label": 0}]},
    "rte": {
        "eval": [{"premise": "Paris is in France.", "hypothesis": "Paris is in Europe.", "label": 0}],
        "shot": [{"premise": "The cat sleeps.", "hypothesis": "The cat runs.", "label": 1}]},
    "wic": {
        "eval": [{"sentence1": "He sat on the bank of the river.", "sentence2": "She works at the bank.",
                  "word": "bank", "label": 0}],
        "shot": [{"sentence1": "I run daily.", "sentence2": "They run fast.", "word": "run", "label": 1}]},
    "wsc": {
        "eval": [{"text": "Mark told Pete he was late.", "span1_text": "Mark", "span2_text": "he", "label": 1}],
        "shot": [{"text": "The dog chased the cat because it was hungry.", "span1_text": "The cat",
                  "span2_text": "it", "label": 0}]},
    "multirc": {
        "eval": [{"paragraph": "Bob has two dogs.", "question": "How many dogs does Bob have?", "answer": "Two",
                  "label": 1, "idx": {"paragraph": 0, "question": 0, "answer": 0}}],
        "shot": [{"paragraph": "Ann ate an apple.", "question": "What did Ann eat?", "answer": "A pear",
                  "label": 0, "idx": {"paragraph": 0, "question": 0, "answer": 0}}]},
    "record": {
        "eval": [{"passage": "Obama visited Paris.@highlight\n\nThe trip was short", "query": "@placeholder flew home.",
                  "entities": ["Obama", "Paris"], "answers": ["Obama"]}],
        "shot": [{"passage": "Rome is old.@highlight\n\nHistory", "query": "Tourists love @placeholder.",
                  "entities": ["Rome"], "answers": ["Rome"]}]},
    "anli_r1": _ANLI, "anli_r2": _ANLI, "anli_r3": _ANLI,
}


def complete(example, spec):
  """Fills fields missing from `example` with empty values of the spec's dtype and shape."""
  if isinstance(spec, dict):
    example = example or {}
    return {k: complete(example.get(k), s) for k, s in spec.items()}
  if isinstance(spec, tf.RaggedTensorSpec):
    return tf.ragged.constant(example or [], dtype=spec.dtype, ragged_rank=spec.ragged_rank)
  if example is not None:
    return np.asarray(example, dtype=object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype)
  if spec.shape.rank and spec.shape[0] is None:
    return np.zeros([0] * spec.shape.rank, dtype=object if spec.dtype == tf.string else
                    spec.dtype.as_numpy_dtype)
  return b"" if spec.dtype == tf.string else spec.dtype.as_numpy_dtype(0)


def _fixture_for(builder, split: str):
  full = builder.name + ("/" + builder.builder_config.name if builder.builder_config else "")
  for spec in fewshot_tasks.SUITE.values():
    if spec.tfds_name.split(":")[0] == full:
      fixture = FIXTURES[spec.name]
      if split == spec.eval_split:
        return fixture["eval"]
      if split == spec.shot_split:
        return fixture["shot"] if fixture["shot"] is not None else fixture["eval"]
  raise KeyError(f"no fixture for {full} split {split}")


def as_dataset(self, split, **unused_kwargs):
  """tfds.testing.mock_data(as_dataset_fn=...): the fixture examples of the builder's split."""
  spec = self.info.features.get_tensor_spec()
  examples = [complete(e, spec) for e in _fixture_for(self, str(split))]
  return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=spec)
