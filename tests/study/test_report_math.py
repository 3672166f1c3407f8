"""The report's arithmetic on hand-made numbers: means and spreads over seeds, comparisons against the seed spread,
and the three headline sentences."""
import math

import pytest

from skip_t5x.study import headline, stats
from skip_t5x.study.stats import Stat


def test_mean_and_spread_skip_missing_values():
  stat = stats.mean_spread([1.0, 2.0, None, 3.0, float("nan")])
  assert stat == Stat(mean=2.0, spread=1.0, n=3)  # sample std of 1, 2, 3
  assert stats.mean_spread([4.5]) == Stat(4.5, None, 1)  # one seed: no spread
  assert stats.mean_spread([None]) == Stat(None, None, 0)


def test_aggregate_over_seeds_and_mean_train_density():
  seeds = [{"heldout_loss": 3.0, "params": 10.0}, {"heldout_loss": 3.2, "params": 10.0}, {"params": 10.0}]
  agg = stats.aggregate(seeds)
  assert agg["heldout_loss"].mean == pytest.approx(3.1) and agg["heldout_loss"].n == 2
  assert agg["heldout_loss"].spread == pytest.approx(math.sqrt(0.02))
  assert agg["params"] == Stat(10.0, 0.0, 3)
  records = [{"step": 1, "router/density": 0.8}, {"step": 2}, {"step": 3, "router/density": 0.4}]
  assert stats.mean_train_density(records) == pytest.approx(0.6)
  assert stats.mean_train_density([{"step": 1, "loss": 2.0}]) is None


def test_a_difference_is_judged_against_the_spread_of_the_difference():
  method = Stat(3.1, 0.1, 2)
  # Loss: lower is better. 3.6 - 3.1 = 0.5 against sqrt(0.1^2 + 0.1^2) = 0.1414: 3.54x, resolved.
  win = stats.compare(method, Stat(3.6, 0.1, 2), "dense", "heldout_loss")
  assert win.advantage == pytest.approx(0.5) and win.spread == pytest.approx(math.sqrt(0.02))
  assert win.ratio == pytest.approx(0.5 / math.sqrt(0.02)) and win.verdict == "win"
  within = stats.compare(method, Stat(3.0, 0.1, 2), "random", "heldout_loss")
  assert within.advantage == pytest.approx(-0.1) and within.verdict == "within"
  loss = stats.compare(Stat(40.0, 1.0, 2), Stat(45.0, 1.0, 2), "mod", "oneshot_overall")  # higher is better
  assert loss.advantage == pytest.approx(-5.0) and loss.verdict == "loss"
  unresolved = stats.compare(Stat(3.0, None, 1), Stat(3.5, None, 1), "dense", "heldout_loss")
  assert unresolved.spread is None and unresolved.verdict == "unresolved" and unresolved.advantage == 0.5
  assert stats.compare(Stat(None, None, 0), Stat(3.0, 0.1, 2), "x", "heldout_loss") is None


def test_clauses_name_the_size_and_the_multiple_of_the_spread():
  win = stats.Comparison(other="dense", advantage=0.5, spread=0.2)
  assert stats.describe(win, 3) == "beats dense by 0.500 (2.5x the seed spread)"
  within = stats.Comparison(other="random", advantage=-0.1, spread=0.2)
  assert stats.describe(within, 3) == "is within the seed spread of random (0.100 worse, 0.5x the spread)"
  assert stats.describe(stats.Comparison("mod", -5.0, 1.0), 1) == "loses to mod by 5.0 (5.0x the seed spread)"
  assert "one seed" in stats.describe(stats.Comparison("dense", 0.2, None), 3)
  assert stats.join_clauses(["a", "b", "c"]) == "a, b and c"


def _arms(spread_scale=1.0):
  s = lambda v: None if spread_scale is None else v * spread_scale  # noqa: E731
  return {
      "skip": {"heldout_loss": Stat(3.10, s(0.05), 2), "oneshot_overall": Stat(42.0, s(0.5), 2),
               "infer_flops": Stat(5.0e6, 0.0, 2), "time_masked": Stat(0.30, None, 1),
               "time_gather": Stat(0.15, None, 1)},
      "dense": {"heldout_loss": Stat(3.50, s(0.05), 2), "oneshot_overall": Stat(40.0, s(0.5), 2),
                "infer_flops": Stat(4.0e6, 0.0, 2), "time_masked": Stat(0.20, None, 1),
                "time_gather": Stat(0.20, None, 1)},
      "random": {"heldout_loss": Stat(3.12, s(0.05), 2), "oneshot_overall": Stat(45.0, s(0.5), 2)},
  }


def test_headline_sentences_from_given_numbers():
  first, second, third = headline.headline(_arms(), "skip", "dense", ["random", "absent"])
  # loss: dense - skip = 0.40 over sqrt(2) * 0.05 = 0.0707 -> 5.7x; random - skip = 0.02 -> 0.3x
  assert first == ("On held-out loss, skip (3.100 ± 0.050) beats dense by 0.400 (5.7x the seed spread) and is "
                   "within the seed spread of random (0.020 better, 0.3x the spread).")
  # 1-shot: 42 - 40 = 2.0 over 0.707 -> 2.8x; 42 - 45 = -3.0 -> 4.2x
  assert second == ("On the 1-shot average, skip (42.0 ± 0.5) beats dense by 2.0 (2.8x the seed spread) and loses "
                    "to random by 3.0 (4.2x the seed spread).")
  assert third == ("Of 4 comparisons, 2 are wins and 1 losses by more than twice the seed spread, and 1 are within "
                   "it, at 1.25x the inference FLOPs per token of dense and 1.50x its train-step time with masked "
                   "dispatch (0.75x with gather).")


def test_headline_with_one_seed_judges_nothing_and_missing_arms_are_said():
  sentences = headline.headline(_arms(spread_scale=None), "skip", "dense", ["random"])
  assert "one seed" in sentences[0] and "beats dense by 0.400" in sentences[0]
  assert sentences[2].startswith("With one seed per arm none of the 4 differences can be judged against seed "
                                 "noise; skip is ahead in 3 and behind in 1")  # random: ahead on loss, behind on 1-shot
  assert headline.headline({"dense": _arms()["dense"]}, "skip", "dense", [])[0] == (
      "On held-out loss, there is no result for skip.")
