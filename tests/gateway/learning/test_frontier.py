"""The accuracy-cost maths of many-model evaluation and calibration, on points worked out by hand:
the hull, AIQ, the step curve, the figures against the best single model, and the weight that
meets a target. Also: a higher cost weight never raises the mean cost."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gateway.learning.frontier import aiq, hull_vertices, step_area, sweep, weights
from gateway.learning.tradeoff import figures, judge, references
from gateway.learning.weights import calibrate_weight
from gateway.routing.weighing import relative

COSTS = np.array([1.0, 2.0, 3.0, 4.0])
ACCURACY = np.array([0.5, 0.55, 0.8, 0.7])


def test_the_hull_drops_points_under_it_and_after_the_peak() -> None:
    xs, ys = hull_vertices(COSTS, ACCURACY)
    # (2, 0.55) lies under the segment (1, 0.5)-(3, 0.8); (4, 0.7) comes after the peak.
    assert xs.tolist() == [1.0, 3.0]
    assert ys.tolist() == [0.5, 0.8]


def test_aiq_and_step_area_by_hand() -> None:
    # Hull: a trapezoid from 1 to 3 (area 2 x 0.65 = 1.3), then flat at 0.8 to 4 (0.8): 2.1 / 3.
    assert aiq(COSTS, ACCURACY, 1.0, 4.0) == pytest.approx(0.7)
    # Step: 0.5 on [1, 2), 0.55 on [2, 3), 0.8 on [3, 4]: 1.85 / 3.
    assert step_area(COSTS, ACCURACY, 1.0, 4.0) == pytest.approx(1.85 / 3)
    # Below the cheapest point nothing is reachable: from 0 to 1 the area is 0.
    assert aiq(COSTS, ACCURACY, 0.0, 4.0) == pytest.approx(2.1 / 4)
    assert step_area(COSTS, ACCURACY, 0.0, 4.0) == pytest.approx(1.85 / 4)


def test_a_router_against_the_single_models_by_hand() -> None:
    singles_cost, singles_acc = np.array([1.0, 4.0]), np.array([0.5, 0.7])
    router_cost = np.array([1.0, 2.0, 3.0, 4.0])
    router_acc = np.array([0.5, 0.72, 0.75, 0.75])
    found = figures(router_cost, router_acc, singles_cost, singles_acc)
    assert found["best_accuracy"] == pytest.approx(0.75)
    assert found["accuracy_at_best_cost"] == pytest.approx(0.75)
    assert found["cost_to_match"] == pytest.approx(2.0)
    assert found["cost_share_to_match"] == pytest.approx(0.5)
    # Router hull: (1, .5)-(2, .72) area 0.61, then (2, .72)-(3, .75) 0.735, flat 0.75: 2.095.
    assert found["aiq"] == pytest.approx(2.095 / 3)
    # Single models: hull a straight line, 1.8 / 3; step 0.5 on [1, 4): 1.5 / 3.
    assert found["aiq_vs_hull"] == pytest.approx((2.095 - 1.8) / 3)
    assert found["aiq_vs_step"] == pytest.approx((2.095 - 1.5) / 3)


def test_never_matching_the_best_model_is_reported_as_none() -> None:
    found = figures(
        np.array([1.0, 2.0]), np.array([0.4, 0.6]), np.array([1.0, 3.0]), np.array([0.5, 0.7])
    )
    assert found["cost_to_match"] is None
    assert found["cost_share_to_match"] is None


def test_references_and_a_perfect_router() -> None:
    # Model 0 is right on the first two prompts, model 1 (dearer) on the last two.
    labels = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float64)
    prices = np.array([1.0, 3.0])
    refs = references(labels, prices, ("cheap", "dear"))
    assert refs.random == pytest.approx((2.0, 0.5))
    assert refs.oracle == pytest.approx((2.0, 1.0))
    assert refs.best == 0  # equal accuracy: the cheaper
    report = judge("perfect", labels, labels, prices, rounds=50)
    assert report.figures["best_accuracy"] == pytest.approx(1.0)
    assert report.figures["cost_to_match"] == pytest.approx(1.0)  # weight ∞: all cheap, 0.5
    lo, hi = report.intervals["best_accuracy"] or (0.0, 0.0)
    assert lo <= 1.0 <= hi


@settings(max_examples=60, deadline=None)
@given(
    quality=arrays(np.float64, (12, 4), elements=st.floats(0, 1)),
    prices=arrays(np.float64, 4, elements=st.floats(0.01, 10)),
)
def test_a_higher_weight_never_raises_the_mean_cost(
    quality: np.ndarray, prices: np.ndarray
) -> None:
    costs = relative(prices.tolist())
    chosen = sweep(quality, costs, weights(costs))
    mean_cost = prices[chosen].mean(axis=1)
    assert (np.diff(mean_cost) <= 1e-12).all()
    # Per prompt too: a prompt never moves to a dearer model as the weight grows.
    assert (np.diff(prices[chosen], axis=0) <= 1e-12).all()


def test_the_last_weight_of_a_sweep_always_picks_the_cheapest() -> None:
    prices = np.array([2.0, 0.5, 1.0])
    quality = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    chosen = sweep(quality, relative(prices.tolist()), weights(relative(prices.tolist())))
    assert chosen[0].tolist() == [0, 2]
    assert chosen[-1].tolist() == [1, 1]


def test_calibrate_meets_a_cost_or_a_quality_target() -> None:
    # Three models; the predictions match the labels, so the choices are what they are worth.
    labels = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 1]], dtype=np.float64)
    prices = np.array([4.0, 2.0, 1.0])
    by_cost = calibrate_weight(labels, prices, cost_share=0.5, quality=labels)
    assert by_cost.strongest == 0
    assert by_cost.cost_share <= 0.5
    # Each prompt to its cheapest right model (2, 4, 1, 1): half the price, all quality kept.
    assert by_cost.quality_share == pytest.approx(1.0)
    assert by_cost.cost == pytest.approx((2.0 + 4.0 + 1.0 + 1.0) / 4)
    by_quality = calibrate_weight(labels, prices, quality_share=0.75, quality=labels)
    assert by_quality.quality_share >= 0.75
    cheaper = [s for s in by_quality.sweep if s[2] >= 0.75]
    assert by_quality.cost_share == pytest.approx(min(s[1] for s in cheaper))
    with pytest.raises(ValueError, match="one target"):
        calibrate_weight(labels, prices)
    with pytest.raises(ValueError, match="between 0 and 1"):
        calibrate_weight(labels, prices, cost_share=1.5)
