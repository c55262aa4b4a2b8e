"""Probabilistic scores, each against pysteps.verification on small generated ensembles."""

from __future__ import annotations

import numpy as np
import pytest

from nowcast.verify.baselines import import_pysteps
from nowcast.verify.probabilistic import EnsembleAccumulator, crps_ensemble, exceedance_probability, roc_area


def rain_ensemble(seed: int, n_members: int = 8, shape: tuple[int, ...] = (3, 20, 24), ties: bool = False):
    """Members (N, L, H, W) and obs (L, H, W) in mm/h: lognormal rain, dry where a common field is low."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0.0, 1.0, size=shape)
    members = base * rng.lognormal(0.0, 0.5, size=(n_members, *shape))
    obs = base * rng.lognormal(0.0, 0.5, size=shape)
    if ties:  # exact zeros in members and observation, as in real rain
        members[members < 0.6] = 0.0
        obs[obs < 0.6] = 0.0
    return members, obs


def test_crps_is_pysteps_without_ties_and_the_closed_form_with_them():
    probscores = import_pysteps("pysteps.verification.probscores")
    members, obs = rain_ensemble(0)
    np.testing.assert_allclose(crps_ensemble(members, obs).mean(), probscores.CRPS(members, obs), rtol=1e-10)
    members, obs = rain_ensemble(1, ties=True)
    closed_form = np.abs(members - obs).mean(axis=0) - 0.5 * np.abs(members[:, None] - members[None]).mean(axis=(0, 1))
    np.testing.assert_allclose(crps_ensemble(members, obs), closed_form, atol=1e-12)
    # pysteps misses the intervals above an observation that equals a member (0 = 0): it is lower there
    assert probscores.CRPS(members, obs) < crps_ensemble(members, obs).mean()


def test_crps_of_one_member_is_the_absolute_error():
    members, obs = rain_ensemble(2, n_members=1)
    np.testing.assert_allclose(crps_ensemble(members, obs), np.abs(members[0] - obs))


def test_accumulated_scores_are_pysteps():
    probscores = import_pysteps("pysteps.verification.probscores")
    ensscores = import_pysteps("pysteps.verification.ensscores")
    detcontscores = import_pysteps("pysteps.verification.detcontscores")
    n = 8
    acc = EnsembleAccumulator(n_leads=3, n_members=n, thresholds=(1.0, 5.0), min_bin_fraction=0.0)
    forecasts = [rain_ensemble(seed, n) for seed in (3, 4)]
    for members, obs in forecasts:
        acc.add(members, obs)
    result = acc.result()
    for lead in range(3):
        fct = np.concatenate([m[:, lead] for m, _ in forecasts], axis=-1)  # (N, H, 2W)
        ob = np.concatenate([o[lead] for _, o in forecasts], axis=-1)
        assert result["CRPS"][lead] == pytest.approx(probscores.CRPS(fct, ob), rel=1e-10)
        mean_rmse = detcontscores.det_cont_fct(fct.mean(axis=0), ob, scores=["RMSE"])["RMSE"]
        assert result["RMSE_mean"][lead] == pytest.approx(mean_rmse, rel=1e-10)
        # the mean unbiased variance is half the mean squared difference of two members
        spread = np.sqrt(ensscores.ensemble_spread(fct, "MSE") / 2)
        assert result["spread"][lead] == pytest.approx(spread, rel=1e-10)
        assert result["spread_skill"][lead] == pytest.approx(np.sqrt((n + 1) / n) * spread / mean_rmse, rel=1e-10)
        for threshold in (1.0, 5.0):
            probability = exceedance_probability(fct, threshold)
            reldiag = probscores.reldiag_init(threshold, n_bins=10, min_count=0)
            probscores.reldiag_accum(reldiag, probability, ob)
            with np.errstate(invalid="ignore"):  # pysteps divides by the empty bins' zero counts
                expected_probability, expected_frequency = probscores.reldiag_compute(reldiag)
            ours = result[f"reliability@{threshold:g}"]
            np.testing.assert_allclose(ours["probability"][lead], expected_probability, rtol=1e-10)
            np.testing.assert_allclose(ours["frequency"][lead], expected_frequency, rtol=1e-10)
            gap = np.nanmax(np.abs(np.asarray(expected_frequency) - expected_probability))
            assert result[f"reliability_gap@{threshold:g}"][lead] == pytest.approx(gap)
            # pysteps' ROC at every level the ensemble can say: k / N, k = 0..N
            roc = probscores.ROC_curve_init(threshold, n_prob_thrs=n + 1)
            probscores.ROC_curve_accum(roc, probability, ob)
            _, _, area = probscores.ROC_curve_compute(roc, compute_area=True)
            assert result[f"ROC_area@{threshold:g}"][lead] == pytest.approx(area, rel=1e-10)
            brier = np.mean((probability - (ob >= threshold)) ** 2)
            assert result[f"Brier@{threshold:g}"][lead] == pytest.approx(brier, rel=1e-10)


def test_rank_histogram_is_pysteps():
    ensscores = import_pysteps("pysteps.verification.ensscores")
    members, obs = rain_ensemble(5, n_members=6)  # no ties: the rank is unique
    acc = EnsembleAccumulator(n_leads=3, n_members=6, rank_threshold=0.0)
    acc.add(members, obs)
    for lead in range(3):
        expected = ensscores.rankhist(members[:, lead], obs[lead], X_min=None, normalize=True)
        np.testing.assert_allclose(acc.result()["rank_histogram"][lead], expected, rtol=1e-10)
    # with the low-value rule and ties: the same histogram up to the random tie-breaking
    members, obs = rain_ensemble(6, n_members=6, shape=(1, 200, 200), ties=True)
    acc = EnsembleAccumulator(n_leads=1, n_members=6, rank_threshold=0.1)
    acc.add(members, obs)
    np.random.seed(0)
    expected = ensscores.rankhist(members[:, 0], obs[0], X_min=0.1, normalize=True)
    np.testing.assert_allclose(acc.result()["rank_histogram"][0], expected, atol=0.01)


def test_a_reliable_ensemble_scores_as_reliable():
    """Observation and members drawn from the same distribution: spread/skill ~1, a flat rank
    histogram, reliability within a few hundredths."""
    rng = np.random.default_rng(7)
    n = 20
    centre = rng.lognormal(0.0, 1.0, size=(2, 100, 100))
    members = centre * rng.lognormal(0.0, 0.7, size=(n, 2, 100, 100))
    obs = centre * rng.lognormal(0.0, 0.7, size=(2, 100, 100))
    acc = EnsembleAccumulator(n_leads=2, n_members=n)
    acc.add(members, obs)
    result = acc.result()
    assert result["spread_skill"] == pytest.approx([1.0, 1.0], abs=0.05)
    np.testing.assert_allclose(result["rank_histogram"], 1 / (n + 1), atol=0.01)
    assert max(result["reliability_gap@1"]) < 0.05


def test_excluded_and_missing_pixels_and_merge():
    members, obs = rain_ensemble(8)
    members[2, 0, :5] = np.nan
    obs[1, :, :3] = np.nan
    exclude = np.zeros(obs.shape, bool)
    exclude[2] = True
    whole = EnsembleAccumulator(n_leads=3, n_members=8)
    whole.add(members, obs, exclude)
    n_pixels = whole.result()["n_pixels"]
    assert n_pixels == [20 * 24 - 5 * 24, 20 * 24 - 20 * 3, 0]
    assert np.isnan(whole.result()["CRPS"][2])  # nothing scored is undefined, not 0
    halves = [EnsembleAccumulator(n_leads=3, n_members=8) for _ in range(2)]
    halves[0].add(members[:, :, :10], obs[:, :10], exclude[:, :10])
    halves[1].add(members[:, :, 10:], obs[:, 10:], exclude[:, 10:])
    halves[0].merge(halves[1])
    np.testing.assert_allclose(halves[0].result()["CRPS"][:2], whole.result()["CRPS"][:2])


def test_roc_area_of_perfect_and_useless_forecasts():
    assert roc_area(np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert roc_area(np.array([1.0, 0.5, 0.0]), np.array([1.0, 0.5, 0.0])) == pytest.approx(0.5)
