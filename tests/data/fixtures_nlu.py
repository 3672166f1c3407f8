"""Rank-classification tasks outside SuperGLUE: hand-written rows in each TFDS builder's feature structure and
value conventions (ClassLabels given as their integer ids, as tfds returns them), and the expected items.
"""
from tests.data.golden import Golden

_RICK = ("Rick grew up in a troubled household. He never found good support in family, and turned to gangs. It wasn't "
         "long before Rick got shot in a robbery. The incident caused him to turn a new leaf.")
_KAREN = ("Karen was assigned a roommate her first year of college. Their first meeting went well. Karen and her "
          "roommate decided to go to a music show together. The music show was awesome.")
_LAURA = "Laura loved corn. She wanted to grow her own. She planted some seeds in her backyard. She watered them."
_ICE_ENDINGS = [", the man adds wax to the windshield and cuts it.",
                ", a person board a ski lift, while two men supporting the head of the person wearing winter clothes "
                "snow as the we girls sled.",
                ", the man puts on a christmas coat, knitted with netting.",
                ", the man continues removing the snow on his car."]
_FLY_ENDINGS = ["[substeps] Cover the jar with plastic wrap and poke small holes in it.",
                "Flies hate vinegar, so they will leave.",
                "[title] Throw the jar away. [step] The flies will go with it.",
                "Put the jar in the freezer overnight."]
_GUINEA = ("Provide the guinea pig with a cage full of a few inches of bedding made of ripped {}, you will also need "
           "to supply it with a water bottle and a food dish.")
_FEVER = ["a leg muscle relaxing after exercise", "a bacterial population in the bloodstream",
          "several viral particles on the skin", "carbohydrates being digested in the stomach"]
_MINERAL = ["luster", "mass", "weight", "hardness", "streak on a scale"]


def _wsc273(txt1, pron, txt2, options, normalized, label, idx):
  """A row as the wsc273 builder writes it: text = txt1 + ' ' + pron + ' ' + txt2, offsets of the pronoun."""
  return {"text": f"{txt1} {pron} {txt2}", "pronoun_text": pron, "pronoun_start": len(txt1) + 1,
          "pronoun_end": len(txt1) + 1 + len(pron), "option1": options[0], "option2": options[1],
          "option1_normalized": normalized[0], "option2_normalized": normalized[1], "label": label, "idx": idx}


def _arc(qid, question, choices, answer_key):
  return {"id": qid, "question": question, "choices": {"text": choices, "label": list(range(len(choices)))},
          "answerKey": answer_key}


def _openbook(stem, choices, key):
  return {"question": {"stem": stem, **{f"choice_{k}": c for k, c in zip("ABCD", choices)}}, "answerKey": key,
          "fact1": "the sun is the source of energy for physical cycles on Earth", "humanScore": 1.0,
          "clarity": 2.0, "turkIdAnonymized": "b356d338b7"}


_RACE_SHOT = {"article": "Lily reads every day before bed.", "questions": ["What does Lily do every day?"],
              "options": [["Reads.", "Swims.", "Sings.", "Runs."]], "answers": ["A"], "example_id": "middle7.txt"}
_RACE_M = {"article": "Tom lives near his school. Every morning he walks there with his sister Lucy.",
           "questions": ["How does Tom usually go to school?", "Tom goes to school with _ ."],
           "options": [["By bus.", "On foot.", "By bike.", "By taxi."], ["his father", "his sister", "Lily", "a dog"]],
           "answers": ["B", "B"], "example_id": "middle101.txt"}

ROWS = {
    "hellaswag": {
        "eval": [{"activity_label": "Removing ice from car", "endings": _ICE_ENDINGS, "label": 3,
                  "context": "Then, the man writes over the snow covering the window of a car, and a woman wearing "
                             "winter clothes smiles. then", "split_type": "indomain",
                  "source_id": "activitynet~v_-1IBHYS3L-Y"},
                 {"activity_label": "Home and Garden", "endings": _FLY_ENDINGS, "label": 0,
                  "context": "[header] How to get rid of fruit flies [title] Make a vinegar trap. [step] pour apple "
                             "cider vinegar into a jar.", "split_type": "zeroshot", "source_id": "wikihow~12345"}],
        "shot": [{"activity_label": "Running", "context": "A man is standing on a track. he", "label": 0,
                  "endings": ["starts running around the track.", "eats the track.", "flies away.", "sings."],
                  "split_type": "indomain", "source_id": "activitynet~v_abc"}]},
    "story_cloze": {  # label = AnswerRightEnding, 1 or 2
        "eval": [{"context": _RICK, "endings": ["He is happy now.", "He joined a gang."], "label": 1},
                 {"context": _KAREN, "endings": ["Karen hated her roommate.",
                                                 "Karen became good friends with her roommate."], "label": 2}],
        "shot": [{"context": _LAURA, "endings": ["Laura's corn grew tall.", "Laura hated corn."], "label": 1}]},
    "winograd": {  # one split: each example's exemplar must be the other one
        "eval": [_wsc273("The city councilmen refused the demonstrators a permit because", "they",
                         "feared violence.", ["The city councilmen", "The demonstrators"],
                         ["the city councilmen", "the demonstrators"], 0, 0),
                 _wsc273("The man lifted the boy onto", "his", "shoulders.", ["The man", "The boy"],
                         ["the man", "the boy"], 0, 1)],
        "shot": None},
    "winogrande": {  # ClassLabel names '1', '2': label 0 = option1
        "eval": [{"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
                  "option1": "Sarah", "option2": "Maria", "label": 0}],
        "shot": [{"sentence": "The trophy doesn't fit into the brown suitcase because the _ is too small.",
                  "option1": "trophy", "option2": "suitcase", "label": 1}]},
    "piqa": {
        "eval": [{"id": "0a3c0b5e", "goal": "How do I ready a guinea pig cage for it's new occupants?",
                  "sol1": _GUINEA.format("paper strips"), "sol2": _GUINEA.format("jeans material"), "label": 0}],
        "shot": [{"id": "1b4d1c6f", "goal": "To clean a wooden cutting board,", "sol1": "soak it overnight.",
                  "sol2": "rub it with salt and half a lemon.", "label": 1}]},
    "arc_easy": {"eval": [_arc("Mercury_7220990", "Which factor will most likely cause a person to develop a fever?",
                               _FEVER, 1)],
                 "shot": [_arc("MCAS_2000_4_6", "Which of these is a source of light energy?",
                               ["a rock", "the Sun", "a pillow", "a shadow"], 1)]},
    "arc_challenge": {"eval": [_arc("Mercury_SC_401", "Which test best identifies a mineral by its color?",
                                    _MINERAL, 4)],
                      "shot": [_arc("MCAS_2000_4_6", "Which of these is a source of light energy?",
                                    ["a rock", "the Sun", "a pillow", "a shadow"], 1)]},
    "openbookqa": {
        "eval": [_openbook("The sun is responsible for", ["puppies learning new tricks",
                                                          "children growing up and getting old",
                                                          "flowers wilting in a vase",
                                                          "plants sprouting, blooming and wilting"], 3)],
        "shot": [_openbook("When food is reduced in the stomach", ["the mind needs time to digest",
                                                                   "take a second to digest what I said",
                                                                   "nutrients are being deconstructed",
                                                                   "reader's digest is a body of works"], 2)]},
    "race_m": {"eval": [_RACE_M], "shot": [_RACE_SHOT]},
    "race_h": {"eval": [{**_RACE_M, "example_id": "high101.txt"}], "shot": [{**_RACE_SHOT, "example_id": "high7.txt"}]},
}

_RACE_DEMO = "Article: Lily reads every day before bed.\n\nQuestion: What does Lily do every day?\nAnswer: Reads."
_RACE_ARTICLE = "Article: Tom lives near his school. Every morning he walks there with his sister Lucy.\n\n"
_COUNCIL = "The city councilmen refused the demonstrators a permit because "

GOLDEN = {
    "hellaswag": [
        Golden(0, "Running: A man is standing on a track. He starts running around the track.",
               "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman "
               "wearing winter clothes smiles. Then", [" " + e for e in _ICE_ENDINGS], [3]),
        Golden(1, "Running: A man is standing on a track. He starts running around the track.",
               "Home and Garden: How to get rid of fruit flies. Make a vinegar trap. Pour apple cider vinegar into "
               "a jar.", [" Cover the jar with plastic wrap and poke small holes in it.",
                          " Flies hate vinegar, so they will leave.", " Throw the jar away. The flies will go with it.",
                          " Put the jar in the freezer overnight."], [0])],
    "story_cloze": [
        Golden(0, _LAURA + " Laura's corn grew tall.", _RICK, [" He is happy now.", " He joined a gang."], [0]),
        Golden(1, _LAURA + " Laura's corn grew tall.", _KAREN,
               [" Karen hated her roommate.", " Karen became good friends with her roommate."], [1])],
    "winograd": [
        Golden(0, "The man lifted the boy onto the man's shoulders.",
               [_COUNCIL + "the city councilmen", _COUNCIL + "the demonstrators"], [" feared violence."] * 2, [0]),
        Golden(1, _COUNCIL + "the city councilmen feared violence.",
               ["The man lifted the boy onto the man's", "The man lifted the boy onto the boy's"],
               [" shoulders."] * 2, [0])],
    "winogrande": [Golden(0, "The trophy doesn't fit into the brown suitcase because the suitcase is too small.",
                          ["Sarah was a much better surgeon than Maria so Sarah",
                           "Sarah was a much better surgeon than Maria so Maria"],
                          [" always got the harder cases."] * 2, [0])],
    "piqa": [Golden(0, "Question: To clean a wooden cutting board,\nAnswer: rub it with salt and half a lemon.",
                    "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:",
                    [" " + _GUINEA.format("paper strips"), " " + _GUINEA.format("jeans material")], [0])],
    "arc_easy": [Golden(0, "Question: Which of these is a source of light energy?\nAnswer: the Sun",
                        "Question: Which factor will most likely cause a person to develop a fever?\nAnswer:",
                        [" " + c for c in _FEVER], [1])],
    "arc_challenge": [Golden(0, "Question: Which of these is a source of light energy?\nAnswer: the Sun",
                             "Question: Which test best identifies a mineral by its color?\nAnswer:",
                             [" " + c for c in _MINERAL], [4])],
    "openbookqa": [Golden(0, "When food is reduced in the stomach nutrients are being deconstructed",
                          "The sun is responsible for",
                          [" puppies learning new tricks", " children growing up and getting old",
                           " flowers wilting in a vase", " plants sprouting, blooming and wilting"], [3])],
    "race_m": [Golden(0, _RACE_DEMO, _RACE_ARTICLE + "Question: How does Tom usually go to school?\nAnswer:",
                      [" By bus.", " On foot.", " By bike.", " By taxi."], [1])],
    "race_h": [Golden(1, _RACE_DEMO, _RACE_ARTICLE + "Question: Tom goes to school with _ .\nAnswer:",
                      [" his father", " his sister", " Lily", " a dog"], [1])],
}
