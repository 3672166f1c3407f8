"""SuperGLUE and ANLI tasks: hand-written rows in the TFDS builders' feature structure (super_glue ClassLabels:
boolq/wic/wsc/multirc ('False', 'True'), cb ('entailment', 'contradiction', 'neutral'), rte ('entailment',
'not_entailment'), copa ('choice1', 'choice2'); anli ('e', 'n', 'c')), and the expected items.
"""
from tests.data.golden import Golden

_PERSIAN = ("Persian language -- Persian (/\u02c8p\u025c\u02d0r\u0292\u0259n/), also known by its endonym Farsi, is "
            "one of the Western Iranian languages. It is primarily spoken in Iran, Afghanistan (officially known as "
            "Dari since 1958), and Tajikistan (officially known as Tajiki since the Soviet era).")
_CB_SHOT = ("B: And yet, uh, I we-, I hope to see employer based, you know, helping out. A: Uh-huh. B: But what do "
            "you think, do you think we are, setting a trend?")
_POPE = ("A place of sorrow, after Pope John Paul II died, became a place of celebration, as Roman Catholic faithful "
         "gathered in downtown Chicago to mark the installation of new Pope Benedict XVI.")
_MOTHERS = ("The mothers of Arthur and Celeste have come to the town to fetch them. They are very happy to have them "
            "back, but they scold them just the same because they ran away.")
_MARK = "Mark told Pete many lies about himself, which Pete included in his book. He should have been more skeptical."
_OBAMA = ("(CNN) -- Barack Obama visited Paris on Monday for climate talks.\n@highlight\nObama met French leaders\n"
          "@highlight\nThe talks lasted two days")
_PARMA = ("The Parma trolleybus system (Italian: \"Rete filoviaria di Parma\" ) forms part of the public transport "
          "network of the city and \"comune\" of Parma, in northern Italy. In operation since 1953, the system "
          "presently comprises four urban routes.")
_ANLI = {"eval": [{"uid": "0fd0abfb-659e-4453-b196-c3a64d2d8267", "context": _PARMA,
                   "hypothesis": "The trolleybus system has over 2 urban routes", "label": 0}],
         "shot": [{"uid": "2b4e7f1a-3c5d-4e6f-8a9b-0c1d2e3f4a5b", "context": "Dogs bark at strangers.",
                   "hypothesis": "Dogs meow.", "label": 2}]}

ROWS = {
    "boolq": {
        "eval": [{"question": "do iran and afghanistan speak the same language", "passage": _PERSIAN, "label": 1,
                  "idx": 0}],
        "shot": [{"question": "is the sun a star", "passage": "Sun -- The Sun is the star at the center of the Solar "
                                                              "System.", "label": 1, "idx": 0}]},
    "cb": {
        "eval": [{"premise": "It was a complex language. Not written down but handed down. One might say it was "
                             "peeled down.", "hypothesis": "the language was peeled down", "label": 0, "idx": 0}],
        "shot": [{"premise": _CB_SHOT, "hypothesis": "they are setting a trend", "label": 2, "idx": 0}]},
    "copa": {
        "eval": [{"premise": "My body cast a shadow over the grass.", "question": "cause",
                  "choice1": "The sun was rising.", "choice2": "The grass was cut.", "label": 0, "idx": 0},
                 {"premise": "I wanted to conserve energy.", "question": "effect",
                  "choice1": "I swept the floor in the unoccupied room.",
                  "choice2": "I shut off the light in the unoccupied room.", "label": 1, "idx": 1}],
        "shot": [{"premise": "The man turned on the faucet.", "question": "effect",
                  "choice1": "The toilet filled with water.", "choice2": "Water flowed from the spout.", "label": 1,
                  "idx": 0}]},
    "rte": {
        "eval": [{"premise": "No Weapons of Mass Destruction Found in Iraq Yet.",
                  "hypothesis": "Weapons of Mass Destruction Found in Iraq.", "label": 1, "idx": 0}],
        "shot": [{"premise": _POPE, "hypothesis": "Pope Benedict XVI is the new leader of the Roman Catholic Church",
                  "label": 0, "idx": 0}]},
    "wic": {
        "eval": [{"word": "place", "sentence1": "Do you want to come over to my place later?",
                  "sentence2": "A political system with no place for the less prominent groups.",
                  "start1": 31, "start2": 27, "end1": 36, "end2": 32, "label": 0, "idx": 0}],
        "shot": [{"word": "carry", "sentence1": "You must carry your camping gear.",
                  "sentence2": "Sound carries well over water.", "start1": 9, "start2": 6, "end1": 14, "end2": 13,
                  "label": 0, "idx": 0}]},
    "wsc": {  # span2_index: word index of the pronoun; here its third occurrence ('they' at 23 and 30, 'They' at 14)
        "eval": [{"text": _MOTHERS, "span1_index": 3, "span2_index": 30, "span1_text": "Arthur and Celeste",
                  "span2_text": "they", "label": 1, "idx": 0}],
        "shot": [{"text": _MARK, "span1_index": 0, "span2_index": 13, "span1_text": "Mark", "span2_text": "He",
                  "label": 0, "idx": 0}]},
    "multirc": {
        "eval": [{"paragraph": "While this process moved along, diplomacy continued its rounds. Direct pressure on the "
                               "Taliban had proved unsuccessful.", "question": "What continued its rounds?",
                  "answer": "Diplomacy", "label": 1, "idx": {"paragraph": 0, "question": 0, "answer": 0}}],
        "shot": [{"paragraph": "Sam has a red bike and a blue kite.", "question": "What color is Sam's bike?",
                  "answer": "Blue", "label": 0, "idx": {"paragraph": 0, "question": 0, "answer": 1}}]},
    "record": {  # entities: the sorted set of the passage's entity spans; answers: those that fill the query
        "eval": [{"passage": _OBAMA, "query": "@placeholder flew home after the summit.",
                  "entities": ["Barack Obama", "CNN", "Obama", "Paris"], "answers": ["Barack Obama"],
                  "idx": {"passage": 0, "query": 0}}],
        "shot": [{"passage": "Rome is an old city.\n@highlight\nHistory everywhere",
                  "query": "Tourists love @placeholder in spring.", "entities": ["Rome"], "answers": ["Rome"],
                  "idx": {"passage": 0, "query": 0}}]},
    "anli_r1": _ANLI, "anli_r2": _ANLI, "anli_r3": _ANLI,
}

_TFN = " True, False, or Neither?\nAnswer:"
_ANLI_GOLDEN = [Golden(0, "Dogs bark at strangers.\nQuestion: Dogs meow." + _TFN + " False",
                       _PARMA + "\nQuestion: The trolleybus system has over 2 urban routes." + _TFN,
                       [" True", " Neither", " False"], [0])]
_OBAMA_PROMPT = ("(CNN) -- Barack Obama visited Paris on Monday for climate talks.\n- Obama met French leaders\n"
                 "- The talks lasted two days\n-")
_MOTHERS_MARKED = _MOTHERS.replace("because they ran", "because *they* ran")

GOLDEN = {
    "boolq": [Golden(0, "Sun -- The Sun is the star at the center of the Solar System.\nQuestion: is the sun a star?"
                        "\nAnswer: yes",
                     _PERSIAN + "\nQuestion: do iran and afghanistan speak the same language?\nAnswer:",
                     [" no", " yes"], [1])],
    "cb": [Golden(0, _CB_SHOT + "\nQuestion: they are setting a trend." + _TFN + " Neither",
                  "It was a complex language. Not written down but handed down. One might say it was peeled down.\n"
                  "Question: the language was peeled down." + _TFN, [" True", " False", " Neither"], [0])],
    "copa": [Golden(0, "The man turned on the faucet therefore water flowed from the spout.",
                    "My body cast a shadow over the grass because", [" the sun was rising.", " the grass was cut."],
                    [0]),
             Golden(1, "The man turned on the faucet therefore water flowed from the spout.",
                    "I wanted to conserve energy therefore", [" I swept the floor in the unoccupied room.",
                                                              " I shut off the light in the unoccupied room."], [1])],
    "rte": [Golden(0, _POPE + "\nQuestion: Pope Benedict XVI is the new leader of the Roman Catholic Church. True or "
                              "False?\nAnswer: True",
                   "No Weapons of Mass Destruction Found in Iraq Yet.\nQuestion: Weapons of Mass Destruction Found in "
                   "Iraq. True or False?\nAnswer:", [" True", " False"], [1])],
    "wic": [Golden(0, "Sentence 1: You must carry your camping gear.\nSentence 2: Sound carries well over water.\n"
                      "Question: Is the word 'carry' used in the same way in the two sentences above?\nAnswer: no",
                   "Sentence 1: Do you want to come over to my place later?\nSentence 2: A political system with no "
                   "place for the less prominent groups.\nQuestion: Is the word 'place' used in the same way in the "
                   "two sentences above?\nAnswer:", [" no", " yes"], [0])],
    "wsc": [Golden(0, "Passage: Mark told Pete many lies about himself, which Pete included in his book. *He* should "
                      "have been more skeptical.\nQuestion: In the passage above, does the pronoun \"*He*\" refer to "
                      "\"*Mark*\"?\nAnswer: no",
                   f"Passage: {_MOTHERS_MARKED}\nQuestion: In the passage above, does the pronoun \"*they*\" refer to "
                   "\"*Arthur and Celeste*\"?\nAnswer:", [" no", " yes"], [1])],
    "multirc": [Golden(0, "Sam has a red bike and a blue kite.\nQuestion: What color is Sam's bike?\n"
                          "Is \"Blue\" a correct answer?\nAnswer: no",
                       "While this process moved along, diplomacy continued its rounds. Direct pressure on the Taliban "
                       "had proved unsuccessful.\nQuestion: What continued its rounds?\nIs \"Diplomacy\" a correct "
                       "answer?\nAnswer:", [" no", " yes"], [1])],
    "record": [Golden(0, "Rome is an old city.\n- History everywhere\n- Tourists love Rome in spring.", _OBAMA_PROMPT,
                      [f" {e} flew home after the summit." for e in ("Barack Obama", "CNN", "Obama", "Paris")], [0])],
    "anli_r1": _ANLI_GOLDEN, "anli_r2": _ANLI_GOLDEN, "anli_r3": _ANLI_GOLDEN,
}
