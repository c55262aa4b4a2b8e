"""Bootstrap intervals for differences between forecasters: resampling, pairing, reports."""

from __future__ import annotations

import numpy as np
import pytest

from nowcast.store import write_mock_store
from nowcast.verify.baselines import make_forecaster
from nowcast.verify.evaluate import evaluate
from nowcast.verify.metrics import ScoreAccumulator
from nowcast.verify.report import markdown
from nowcast.verify.uncertainty import block_length, compare, resample_weights

N_LEADS = 3


def test_block_length_spans_overlapping_windows_but_leaves_several_blocks():
    assert block_length(n_starts=100, n_leads=12, stride=1) == 12
    assert block_length(n_starts=100, n_leads=12, stride=3) == 4
    assert block_length(n_starts=100, n_leads=12, stride=12) == 1
    assert block_length(n_starts=13, n_leads=12, stride=1) == 3  # at least 4 blocks
    assert block_length(n_starts=2, n_leads=12, stride=1) == 1


def test_resampled_starts_come_in_consecutive_blocks():
    weights = resample_weights(n_starts=9, block=3, n_resamples=500, rng=np.random.default_rng(0))
    assert weights.shape == (500, 9) and (weights.sum(axis=1) == 9).all()
    assert (weights > 0).any(axis=0).all()  # every start can be drawn, the last ones included
    # three whole blocks per resample: start 0 only ever begins a block, so start 1 comes with it
    assert (weights[:, 1] >= weights[:, 0]).all() and (weights[:, 7] >= weights[:, 8]).all()
    assert (weights[:, 0] > 0).any() and not (weights == 1).all(axis=1).all()


def _accumulate(forecasts, observations):
    """Per-start sums and the merged accumulator, as ``evaluate`` keeps them."""
    total, per_start = ScoreAccumulator(N_LEADS, 1000.0), []
    for forecast, obs in zip(forecasts, observations):
        one = ScoreAccumulator(N_LEADS, 1000.0)
        one.add(forecast, obs)
        total.merge(one)
        per_start.append(one.sums)
    return total, per_start


def test_compare_pairs_the_starts_and_brackets_the_difference():
    rng = np.random.default_rng(1)
    observations = [rng.gamma(0.5, 4.0, (N_LEADS, 24, 24)) for _ in range(40)]
    noise = [rng.normal(0, 1, o.shape) for o in observations]
    good = [np.clip(o + 0.5 * n, 0, None) for o, n in zip(observations, noise)]
    bad = [np.clip(o + 2.0 * n, 0, None) for o, n in zip(observations, noise)]
    total, good_sums = _accumulate(good, observations)
    _, bad_sums = _accumulate(bad, observations)
    result = compare(total, {"good": good_sums, "bad": bad_sums, "same": good_sums}, "good", N_LEADS, stride=1)

    versus_bad = result["bad"]
    assert versus_bad["block"] == N_LEADS and versus_bad["independent_windows"] == pytest.approx(40 / N_LEADS)
    mae = versus_bad["MAE"]
    assert all(low <= d <= high < 0 for d, low, high in zip(mae["difference"], mae["low"], mae["high"]))
    assert mae["better_starts"] == mae["scored_starts"] == [40] * N_LEADS
    good_mae, bad_mae = (_accumulate(f, observations)[0].result()["MAE"] for f in (good, bad))
    np.testing.assert_allclose(mae["difference"], np.subtract(good_mae, bad_mae))
    assert all(high > 0 for high in versus_bad["CSI@1"]["high"])  # fewer false alarms: a higher CSI

    same = result["same"]["MAE"]  # paired resampling: a method against itself differs by exactly 0
    assert same["difference"] == same["low"] == same["high"] == [0.0] * N_LEADS
    assert same["better_starts"] == [0] * N_LEADS


def test_evaluate_reports_the_first_method_against_the_others(tmp_path):
    store = write_mock_store(str(tmp_path / "mock.zarr"), n_times=40, shape=(40, 40))
    forecasters = {
        name: make_forecaster(name, store.grid.pixel_size, store.layout.time_step_s)
        for name in ("extrapolation", "persistence")
    }
    result = evaluate(store, forecasters, 3, N_LEADS)
    assert list(result.comparisons) == ["persistence"]
    mae = result.comparisons["persistence"]["MAE"]
    extrapolation, persistence = result.methods["extrapolation"]["MAE"], result.methods["persistence"]["MAE"]
    np.testing.assert_allclose(mae["difference"], np.subtract(extrapolation, persistence))
    assert mae["high"][-1] < 0  # the mock blobs move: extrapolation is better, and surely so by the last lead
    assert mae["scored_starts"] == [result.n_starts] * N_LEADS
    # neighbouring starts share frames: N_LEADS consecutive starts amount to one independent window
    assert result.comparisons["persistence"]["independent_windows"] == pytest.approx(result.n_starts / N_LEADS)
    few = evaluate(store, forecasters, 3, N_LEADS, max_starts=8).comparisons["persistence"]
    assert few["block"] == 2 and few["independent_windows"] == pytest.approx(8 / N_LEADS)  # 4 blocks, still 2.7 windows

    text = markdown(result)
    assert "## extrapolation against persistence" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {5 * N_LEADS} |") and "[" in line)
    assert f"/{result.n_starts})" in row

    alone = evaluate(store, {"persistence": forecasters["persistence"]}, 3, N_LEADS, max_starts=2)
    assert alone.comparisons == {} and "against" not in markdown(alone)
