"""Generation tasks: hand-written rows in each TFDS builder's feature structure and value conventions, and the
prompts, targets and gold answers expected from them (written out by hand, not produced by the code).

ROWS[task] = {'eval': [...], 'shot': [...]}; GOLDEN[task] = [Golden(...)] for the checked eval items.
"""
from tests.data.golden import Golden

_PINOCHET = ("Pinochet was publicly known as a man with a lack of culture. This image was reinforced by the fact that "
             "he portrayed himself as a common man. He studied geopolitics and military history. CANNOTANSWER")
_PINOCHET_HEADER = "Augusto Pinochet: Intellectual life and studies\n\n" + _PINOCHET
_COTTON = ("Once upon a time, in a barn near a farm house, there lived a little white kitten named Cotton. Cotton "
           "lived high up in a nice warm place above the barn where all of the farmer's horses slept.")
_RAIDERS = ("Hoping to rebound from their loss to the Patriots, the Raiders stayed at home for a Week 16 duel with the "
            "Houston Texans. Oakland would get the early lead in the first quarter as quarterback JaMarcus Russell "
            "completed a 20-yard touchdown pass to rookie wide receiver Chaz Schilens.")
_NORMANS = ("The Normans (Norman: Nourmands; French: Normands; Latin: Normanni) were the people who in the 10th and "
            "11th centuries gave their name to Normandy, a region in France.")
_LAMBADA = ("in my palm is a clear stone , and inside it is a small ivory statuette . a guardian angel . `` figured if "
            "you 're going to be out at night getting hit by cars , you might as well have some backup . '' i look at "
            "him , feeling stunned . like this is some sort of sign . but as i stare at harlin , his mouth curved in a "
            "confident grin , i do n't care about signs")


def _quac(question, answer, start, followup="y", orig=None):
  orig = orig or answer
  return {"title": "Augusto Pinochet", "section_title": "Intellectual life and studies",
          "background": "Augusto Jose Ramon Pinochet Ugarte was a Chilean general, politician and dictator.",
          "context": _PINOCHET, "question": question, "followup": followup, "yesno": "x",
          "answers": {"text": [answer], "answer_start": [start]},
          "orig_answer": {"text": orig, "answer_start": start}}


def _trivia(question, qid, value, aliases, normalized):
  return {"question": question, "question_id": qid, "question_source": "http://www.triviacountry.com/",
          "answer": {"value": value, "aliases": aliases, "normalized_aliases": normalized,
                     "normalized_value": normalized[0], "type": "WikipediaEntity",
                     "matched_wiki_entity_name": value, "normalized_matched_wiki_entity_name": normalized[0]}}


ROWS = {
    "trivia_qa": {
        "eval": [_trivia("Which American-born Sinclair won the Nobel Prize for Literature in 1930?", "tc_1",
                         "Sinclair Lewis", ["Sinclair Lewis", "Harry Sinclair Lewis", "Lewis, Sinclair"],
                         ["sinclair lewis", "harry sinclair lewis", "lewis sinclair"])],
        "shot": [_trivia("Where in England was Dame Judi Dench born?", "tc_3", "York", ["York, UK", "York"],
                         ["york uk", "york"])]},
    "natural_questions": {  # natural_questions_open: lower case, no question mark, a list of answers
        "eval": [{"question": "where is the eiffel tower located in paris",
                  "answer": ["Champ de Mars", "on the Champ de Mars in Paris"]}],
        "shot": [{"question": "how many legs does a spider have", "answer": ["eight"]}]},
    "web_questions": {
        "eval": [{"url": "http://www.freebase.com/view/en/justin_bieber",
                  "question": "what is the name of justin bieber brother?",
                  "answers": ["Jazmyn Bieber", "Jaxon Bieber"]}],
        "shot": [{"url": "http://www.freebase.com/view/en/brazil", "question": "what language do they speak in brazil?",
                  "answers": ["Portuguese Language"]}]},
    "squad_v2": {
        "eval": [{"id": "56ddde6b9a695914005b9628", "title": "Normans", "context": _NORMANS,
                  "question": "In what country is Normandy located?", "is_impossible": False,
                  "answers": {"text": ["France", "France", "France"], "answer_start": [159, 159, 159]}},
                 {"id": "5ad39d53604f3c001a3fe8d1", "title": "Normans", "context": _NORMANS,
                  "question": "Who gave their name to Normandy in the 1000's and 1100's", "is_impossible": True,
                  "answers": {"text": [], "answer_start": []},
                  "plausible_answers": {"text": ["Normans"], "answer_start": [4]}}],
        "shot": [{"id": "5ad3ed86604f3c001a3ff7a1", "title": "Oxygen",
                  "context": "Oxygen is a chemical element with symbol O and atomic number 8.",
                  "question": "What is the atomic number of helium?", "is_impossible": True,
                  "answers": {"text": [], "answer_start": []},
                  "plausible_answers": {"text": ["8"], "answer_start": [61]}}]},
    "lambada": {  # one passage per line of the plain-text file, newline included
        "eval": [{"passage": _LAMBADA + "\n"}],
        "shot": [{"passage": "the farmer walked out with his dog . the dog ran ahead toward the hills , and he "
                             "followed the dog\n"}]},
    "drop": {  # query_id is the dataset's query_id + the question's index; dates are year-month-day
        "eval": [{"query_id": "f37e81fa-ef7b-4583-b671-762fc433faa90", "passage": _RAIDERS,
                  "question": "Who caught the touchdown pass?", "answer": "Chaz Schilens",
                  "validated_answers": ["Chaz Schilens", "Schilens"]},
                 {"query_id": "9a3b4c1e-1d2e-4f50-8a6b-7c8d9e0f1a2b1",
                  "passage": "The treaty was signed on 12 June 1996 in Geneva, two years after the talks began.",
                  "question": "When was the treaty signed?", "answer": "1996-June-12",
                  "validated_answers": ["1996-June-12"]}],
        "shot": [{"query_id": "28553293-d719-441b-8f00-ce3dc6df5398", "passage": "Smith kicked a 45-yard field goal.",
                  "question": "How many yards was the field goal?", "answer": "45", "validated_answers": []}]},
    "quac": {  # rows arrive in hashed order: here the dialogue's second question comes first
        "eval": [_quac("Did he write any books?", "CANNOTANSWER", 197, followup="n"),
                 _quac("What was his image?", "a man with a lack of culture.", 32)],
        "shot": [{"title": "Alan Turing", "section_title": "Career",
                  "context": "Turing worked at Bletchley Park during the war. CANNOTANSWER",
                  "question": "Where did Turing work?", "followup": "y", "yesno": "x",
                  "answers": {"text": ["Bletchley Park"], "answer_start": [17]},
                  "orig_answer": {"text": "at Bletchley Park", "answer_start": 14}}]},
    "coqa": {  # one row per story, questions and answers in dialogue order
        "eval": [{"source": "mctest", "story": _COTTON,
                  "questions": ["What color was Cotton?", "Where did she live?", "Did she live alone?"],
                  "answers": {"input_text": ["white", "in a barn", "no"], "answer_start": [59, 18, -1],
                              "answer_end": [93, 80, -1]}}],
        "shot": [{"source": "race", "story": "Sue likes tea. She drinks it every morning.",
                  "questions": ["What does Sue like?"],
                  "answers": {"input_text": ["tea"], "answer_start": [0], "answer_end": [14]}}]},
}

GOLDEN = {
    "trivia_qa": [Golden(0, "Q: Where in England was Dame Judi Dench born?\nA: York",
                         "Q: Which American-born Sinclair won the Nobel Prize for Literature in 1930?\nA:",
                         [" Sinclair Lewis"],
                         ["Sinclair Lewis", "Harry Sinclair Lewis", "Lewis, Sinclair", "sinclair lewis",
                          "harry sinclair lewis", "lewis sinclair"])],
    "natural_questions": [Golden(0, "Q: how many legs does a spider have?\nA: eight",
                                 "Q: where is the eiffel tower located in paris?\nA:", [" Champ de Mars"],
                                 ["Champ de Mars", "on the Champ de Mars in Paris"])],
    "web_questions": [Golden(0, "Q: what language do they speak in brazil?\nA: Portuguese Language",
                             "Q: what is the name of justin bieber brother?\nA:", [" Jazmyn Bieber"],
                             ["Jazmyn Bieber", "Jaxon Bieber"])],
    "squad_v2": [
        Golden(0, "Title: Oxygen\n\nBackground: Oxygen is a chemical element with symbol O and atomic number 8.\n\n"
                  "Q: What is the atomic number of helium?\n\nA: unanswerable",
               f"Title: Normans\n\nBackground: {_NORMANS}\n\nQ: In what country is Normandy located?\n\nA:",
               [" France"], ["France"]),
        Golden(1, "Title: Oxygen\n\nBackground: Oxygen is a chemical element with symbol O and atomic number 8.\n\n"
                  "Q: What is the atomic number of helium?\n\nA: unanswerable",
               f"Title: Normans\n\nBackground: {_NORMANS}\n\nQ: Who gave their name to Normandy in the 1000's and "
               "1100's\n\nA:", [" unanswerable"], [""])],
    "lambada": [Golden(0, "the farmer walked out with his dog . the dog ran ahead toward the hills , and he followed "
                          "the dog", _LAMBADA[:-len(" signs")], [" signs"], ["signs"])],
    "drop": [
        Golden(0, "Passage: Smith kicked a 45-yard field goal.\nQuestion: How many yards was the field goal?\n"
                  "Answer: 45", f"Passage: {_RAIDERS}\nQuestion: Who caught the touchdown pass?\nAnswer:",
               [" Chaz Schilens"], ["Chaz Schilens", "Schilens"]),
        Golden(1, "Passage: Smith kicked a 45-yard field goal.\nQuestion: How many yards was the field goal?\n"
                  "Answer: 45", "Passage: The treaty was signed on 12 June 1996 in Geneva, two years after the talks "
                                "began.\nQuestion: When was the treaty signed?\nAnswer:",
               [" 12 June 1996"], ["12 June 1996"])],
    # TFDS quac rows carry no question id, so no question can be placed in its dialogue: no history at all (the old
    # code made the LATER question 'Did he write any books?' the history of 'What was his image?').
    "quac": [
        Golden(0, "Alan Turing: Career\n\nTuring worked at Bletchley Park during the war. CANNOTANSWER\n\n"
                  "Q: Where did Turing work?\nA: Bletchley Park",
               _PINOCHET_HEADER + "\n\nQ: Did he write any books?\nA:", [" CANNOTANSWER"], ["CANNOTANSWER"]),
        Golden(1, "Alan Turing: Career\n\nTuring worked at Bletchley Park during the war. CANNOTANSWER\n\n"
                  "Q: Where did Turing work?\nA: Bletchley Park",
               _PINOCHET_HEADER + "\n\nQ: What was his image?\nA:", [" a man with a lack of culture."],
               ["a man with a lack of culture."])],
    "coqa": [Golden(1, "Sue likes tea. She drinks it every morning.\n\nQ: What does Sue like?\nA: tea",
                    _COTTON + "\n\nQ: What color was Cotton?\nA: white\n\nQ: Where did she live?\nA:",
                    [" in a barn"], ["in a barn"])],
}
