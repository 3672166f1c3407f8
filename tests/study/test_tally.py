"""The routing tally on hand-made decisions: densities count real tokens only, skip fractions per token id."""
import numpy as np
import pytest

from skip_t5x.study import tally


def test_densities_token_skips_and_the_sample_on_hand_made_decisions(monkeypatch):
  monkeypatch.setattr(tally, "MIN_OCCURRENCES", 2)
  tokens = np.array([[5, 6, 5, 7], [6, 6, 5, 0]])  # [batch, length]; the last position of row 1 is padding
  mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
  decisions = {"layer_00": np.array([[1, 0, 1, 1], [0, 0, 1, 1]], bool),
               "layer_01": np.array([[0, 0, 1, 1], [1, 0, 0, 1]], bool)}
  t = tally.RoutingTally(vocab_size=8)
  t.add(decisions, tokens, mask)
  # layer_00 executes 3 of row 0 and 1 of row 1's 3 real tokens: 4 / 7; layer_01: 2 + 1 = 3 / 7.
  assert t.densities() == pytest.approx({"layer_00": 4 / 7, "layer_01": 3 / 7})
  assert t.mean_density() == pytest.approx(0.5)
  # Token 6 occurs 3 times x 2 modules = 6 decisions, skipped in 5 (all but layer_01 at row 1, position 0).
  # Token 5 occurs 3 times: skipped at (0, 0) by layer_01 and at (1, 2) by layer_01: 2 of 6.
  # Token 7 occurs once: below MIN_OCCURRENCES.
  lists = t.token_lists(top=5, text=str)
  assert [(e["token"], e["occurrences"]) for e in lists["most_skipped"]] == [("6", 3)]
  assert lists["most_skipped"][0]["skip_fraction"] == pytest.approx(5 / 6)
  assert [(e["token"], e["skip_fraction"]) for e in lists["least_skipped"]] == [("5", pytest.approx(2 / 6))]
  sample = t.sample(max_tokens=3, text=lambda i: f"t{i}")
  assert sample == {"tokens": ["t5", "t6", "t5"], "ids": [5, 6, 5], "modules": ["layer_00", "layer_01"],
                    "execute": [[1, 0, 1], [0, 0, 1]]}


def test_a_model_without_routers_has_no_tally():
  t = tally.RoutingTally(vocab_size=4)
  t.add({}, np.zeros([1, 3], int), np.ones([1, 3], bool))
  assert t.densities() == {} and t.mean_density() is None and t.sample(4, str) is None
  assert t.token_lists(3, str) == {"most_skipped": [], "least_skipped": []}


def test_control_characters_are_shown_escaped():
  assert tally.visible("\n") == "\\n" and tally.visible("▁the") == "▁the"
