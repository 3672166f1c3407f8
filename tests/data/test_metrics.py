"""Metric functions against hand-computed values."""
import math

import pytest

from skip_t5x.data import metrics, rank_classification


def _rows(groups):
  """Rank-classification bookkeeping rows from [(correct_index_set, [num_target_tokens per candidate])]."""
  rows = []
  for idx, (correct, lengths) in enumerate(groups):
    for c, n in enumerate(lengths):
      rows.append({"idx": idx, "candidate": c, "is_correct": c in correct, "num_candidates": len(lengths),
                   "num_target_tokens": n})
  return rows


def test_rank_classification_with_and_without_length_normalization():
  # Example 0: candidate 0 has 1 token (log-lik -2.0), candidate 1 has 4 tokens (log-lik -4.0).
  #   raw: -2.0 > -4.0 -> picks 0; normalized: -2.0 < -1.0 -> picks 1 (the correct one).
  # Example 1: log-liks -1.0 (2 tokens) and -3.0 (2 tokens) -> both pick 0 (correct).
  targets = _rows([({1}, [1, 4]), ({0}, [2, 2])])
  scores = [-2.0, -4.0, -1.0, -3.0]
  # chance: 1 correct of 2 candidates in both examples -> 50%
  assert rank_classification.accuracy(targets, scores, length_normalize=False) == {"accuracy": 50.0,
                                                                                   "chance_accuracy": 50.0}
  assert rank_classification.accuracy(targets, scores, length_normalize=True) == {"accuracy": 100.0,
                                                                                  "chance_accuracy": 50.0}


def test_rank_classification_order_independent_and_multi_correct():
  targets = _rows([({0, 2}, [1, 1, 1]), ({1}, [1, 1, 1])])
  scores = [-3.0, -1.0, -2.0, -5.0, -0.5, -0.1]  # ex0 picks 1 (wrong), ex1 picks 2 (wrong)
  assert rank_classification.accuracy(targets, scores)["accuracy"] == 0.0
  assert rank_classification.accuracy(targets, scores)["chance_accuracy"] == pytest.approx(50.0)  # (2/3+1/3)/2
  scores = [-3.0, -4.0, -2.0, -5.0, -0.5, -0.9]  # ex0 picks 2 (one of two correct), ex1 picks 1
  shuffled = list(zip(targets, scores))[::-1]
  assert rank_classification.accuracy([t for t, _ in shuffled], [s for _, s in shuffled])["accuracy"] == 100.0


def test_rank_classification_missing_candidate_is_an_error():
  targets = _rows([({0}, [1, 1, 1])])[:2]  # candidate 2 lost
  with pytest.raises(ValueError, match="expected 0..2"):
    rank_classification.accuracy(targets, [-1.0, -2.0])


def test_f1a_hand_computed():
  # Four answer options, candidates (no, yes); label: yes, yes, no, no.
  targets = _rows([({1}, [1, 1]), ({1}, [1, 1]), ({0}, [1, 1]), ({0}, [1, 1])])
  # predictions: yes, no, yes, no -> TP=1, FN=1, FP=1 -> F1 = 2*1/(2*1+1+1) = 0.5; accuracy 2/4.
  scores = [-2.0, -1.0, -1.0, -2.0, -3.0, -1.0, -1.0, -3.0]
  result = rank_classification.f1a(targets, scores)
  assert result["f1a"] == pytest.approx(50.0)
  assert result["accuracy"] == pytest.approx(50.0)


def test_squad_normalization_exact_match_and_f1():
  assert metrics.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
  assert metrics.normalize_answer("An apple, a day") == "apple day"
  assert metrics.exact_match("the Cat.", "cat") == 1.0
  # pred tokens [cat, sat], gold tokens [cat, sat, down]: P=1, R=2/3, F1=0.8
  assert metrics.token_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
  result = metrics.squad_metrics([["Paris", "paris france"], ["blue"]], ["paris", "red"])
  assert result == {"exact_match": 50.0, "f1": 50.0}
  result = metrics.squad_metrics([["paris france"]], ["paris"])  # P=1, R=1/2 -> F1 = 2/3
  assert result["f1"] == pytest.approx(100 * 2 / 3)
  assert result["exact_match"] == 0.0


def test_drop_f1_number_handling():
  assert metrics.drop_tokens("The 1,000 men and 2.0 dogs.") == ["1000", "men", "and", "2", "dogs"]
  assert metrics.drop_f1("2.0", "2") == 1.0
  assert metrics.drop_f1("1,000 yards", "1000 yards") == 1.0
  assert metrics.drop_f1("3 dogs", "2 dogs") == 0.0  # numbers differ: zero despite the shared word
  # no numbers in gold: plain bag-of-tokens F1 ([two, dogs] vs [2, dogs]: P=R=1/2)
  assert metrics.drop_f1("2 dogs", "two dogs") == pytest.approx(0.5)
  result = metrics.drop_metrics([["12 yards", "twelve yards"]], ["12"])  # vs '12 yards': P=1, R=1/2, F1 2/3
  assert result["f1"] == pytest.approx(67.0)  # the official scorer rounds each F1 to 2 decimals: 0.67
  assert result["exact_match"] == 0.0


def test_lambada_metric_exact_match_and_random_context_word_chance():
  # Passage 1: 4 context words, 2 of them ("Value", "value.") normalize to the answer -> chance 2/4.
  # Passage 2: 5 context words, none is the answer -> chance 0. Mean chance 25%; predictions: 1 of 2 right.
  targets = [{"answers": ["value"], "context": "Value of the value."},
             {"answers": ["list"], "context": "sort it in a moment"}]
  assert metrics.lambada_metric(targets, ["value", "tuple"]) == {"exact_match": 50.0,
                                                                 "chance_exact_match": 25.0}
  with pytest.raises(ValueError, match="2 targets but 1 predictions"):
    metrics.lambada_metric(targets, ["value"])


def test_exact_match_metric_and_errors():
  assert metrics.exact_match_metric([["Bob", "Robert"], ["x"]], ["robert", "y"]) == {"exact_match": 50.0}
  with pytest.raises(ValueError, match="2 targets but 1 predictions"):
    metrics.exact_match_metric([["a"], ["b"]], ["a"])
  with pytest.raises(ValueError, match="no gold answer"):
    metrics.exact_match_metric([[]], ["a"])
  assert math.isclose(metrics.token_f1("", ""), 1.0)


def test_squad_v2_unanswerable_follows_the_official_scorer():
  # Gold [""] = unanswerable: only an empty prediction scores (EM and F1 1), any non-empty one 0. An empty
  # prediction for an answerable question scores 0.
  targets = [[""], [""], ["France"], ["France"]]
  predictions = ["", "Normans", "France", ""]
  result = metrics.squad_metrics(targets, predictions)
  assert result["exact_match"] == pytest.approx(50.0) and result["f1"] == pytest.approx(50.0)
  assert result["no_answer_exact_match"] == 50.0 and result["no_answer_f1"] == 50.0
  assert result["has_answer_exact_match"] == 50.0 and result["has_answer_f1"] == 50.0
  assert "no_answer_f1" not in metrics.squad_metrics([["France"]], ["France"])  # no breakdown without them


def test_squad_v2_abstention_answer_is_the_empty_prediction():
  from skip_t5x.data import prompts_nlg
  assert prompts_nlg.squad_v2_answer(" unanswerable\nQ: next") == ""
  assert prompts_nlg.squad_v2_answer(" Unanswerable.") == ""
  assert prompts_nlg.squad_v2_answer(" France\nQ: next") == "France"
  # through the metric: the abstention scores on the unanswerable question, an answer does not
  golds, raw = [[""], [""]], [" unanswerable", " the Normans"]
  assert metrics.squad_metrics(golds, [prompts_nlg.squad_v2_answer(p) for p in raw])["f1"] == 50.0


def test_drop_f1_uses_token_sets_and_rounds_like_the_official_scorer():
  # sets: {yards, 5} vs {5, yards} -> F1 1 (a multiset F1 would give P=2/3, R=1, F1=0.8)
  assert metrics.drop_f1("yards yards 5", "5 yards") == 1.0
  # {touchdown, pass} vs {touchdown}: P=1/2, R=1, F1=2/3 -> 0.67
  assert metrics.drop_f1("touchdown pass", "touchdown") == 0.67
  # dates as the official answer strings ('12 June 1996'); the TFDS 'year-month-day' form is converted
  from skip_t5x.data import prompts_nlg
  assert prompts_nlg.drop_answer_text("1996-June-12") == "12 June 1996"
  assert prompts_nlg.drop_answer_text("45-yard") == "45-yard"
  assert metrics.drop_exact_match("June 12 1996", "12 June 1996") == 0.0  # EM keeps the order
  assert metrics.drop_f1("June 12 1996", "12 June 1996") == 1.0  # F1 does not


def test_trivia_qa_uses_its_own_normalization():
  # TriviaQA turns punctuation into spaces: 'Guns-N-Roses' -> 'guns n roses' (SQuAD's deletes it: 'gunsnroses')
  assert metrics.normalize_trivia_qa("Guns-N\u2019Roses_band") == "guns n roses band"
  targets = [["Guns N Roses", "guns n roses"], ["Sinclair Lewis", "lewis sinclair"]]
  assert metrics.trivia_qa_metric(targets, ["Guns-N-Roses", "Lewis, Sinclair"]) == {"exact_match": 100.0}
  assert metrics.exact_match_metric(targets[:1], ["Guns-N-Roses"]) == {"exact_match": 0.0}
  assert metrics.trivia_qa_metric(targets, ["Axl Rose", "the Sinclair Lewis"]) == {"exact_match": 50.0}


def test_record_metrics_take_the_chosen_entity_best_over_gold_answers():
  # Query 0: candidates 'Barack Obama' (gold: EM 1, F1 1) and 'Obama' (EM 0; F1 vs 'Barack Obama': P=1, R=1/2, 2/3).
  # Query 1: candidates 'Paris' (F1 0) and 'France' (gold, F1 1).
  rows = _rows([({0}, [3, 1]), ({1}, [1, 1])])
  for row, credit in zip(rows, [1.0, 2 / 3, 0.0, 1.0]):
    row["credit"] = credit
  scores = [-5.0, -1.0, -3.0, -1.0]  # raw log-likelihoods: query 0 picks 'Obama', query 1 picks 'France'
  result = rank_classification.record_metrics(rows, scores)
  assert result["accuracy"] == pytest.approx(50.0)
  assert result["f1"] == pytest.approx(100 * (2 / 3 + 1) / 2)
  assert result["chance_accuracy"] == pytest.approx(50.0)
  with pytest.raises(ValueError, match="credit"):
    rank_classification.record_metrics(_rows([({0}, [1, 1])]), [0.0, 0.0])
