"""Scores against pysteps.verification on the same arrays, and analytic cases."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from nowcast.verify.baselines import import_pysteps
from nowcast.verify.metrics import (
    CATEGORICAL_THRESHOLDS_MMH,
    ScoreAccumulator,
    categorical_scores,
    fss_window_pixels,
    threshold_label,
)

KNMI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "radar" / "KNMI" / "2010" / "08"


def random_pairs(seed: int, n: int = 3, shape: tuple[int, int, int] = (3, 40, 50)):
    """Forecast/observation pairs: mostly dry, lognormal rain, NaN holes in both (not aligned)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        fields = []
        for _ in range(2):
            rain = rng.lognormal(0.0, 1.5, size=shape) * (rng.random(shape) < 0.4)
            rain[rng.random(shape) < 0.05] = np.nan
            rain[:, :4, :6] = np.nan if rng.random() < 0.5 else rain[:, :4, :6]
            fields.append(np.round(rain, 2).astype(np.float32))
        pairs.append(tuple(fields))
    return pairs


def knmi_pairs():
    """Real KNMI rain rates: persistence forecasts (frame t for t+1..t+3) from three starts."""
    if not KNMI.is_dir():
        pytest.skip(f"real radar data not found at {KNMI}")
    importers = import_pysteps("pysteps.io.importers")
    files = sorted(KNMI.glob("RAD_NL25_RAP_5min_20100826*.h5"))[40:50]
    # 5-minute accumulations in mm -> mm/h; cropped to keep the test fast
    frames = np.array([importers.import_knmi_hdf5(str(f))[0][200:456, 200:456] * 12.0 for f in files], np.float32)
    assert np.isfinite(frames).any() and np.nanmax(frames) > 5.0, "expected a rainy period"
    return [(np.repeat(frames[s][None], 3, axis=0), frames[s + 1 : s + 4]) for s in (0, 3, 6)]


def common_nan(forecast: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both fields with NaN wherever either has no data: the arrays our scores see."""
    bad = ~(np.isfinite(forecast) & np.isfinite(obs))
    f, o = forecast.astype(np.float64), obs.astype(np.float64)
    f[bad] = np.nan
    o[bad] = np.nan
    return f, o


@pytest.mark.parametrize("source", ["random", "knmi"])
def test_scores_match_pysteps(source):
    cat = import_pysteps("pysteps.verification.detcatscores")
    cont = import_pysteps("pysteps.verification.detcontscores")
    spatial = import_pysteps("pysteps.verification.spatialscores")
    pairs = random_pairs(0) if source == "random" else knmi_pairs()
    n_leads = pairs[0][0].shape[0]
    pixel_size_m = 1000.0
    acc = ScoreAccumulator(n_leads, pixel_size_m)
    contabs = {(t, k): cat.det_cat_fct_init(t) for t in CATEGORICAL_THRESHOLDS_MMH for k in range(n_leads)}
    fss = {k: spatial.fss_init(1.0, fss_window_pixels(pixel_size_m)) for k in range(n_leads)}
    errors = {k: cont.det_cont_fct_init() for k in range(n_leads)}
    for forecast, obs in pairs:
        acc.add(forecast, obs)
        f, o = common_nan(forecast, obs)
        for k in range(n_leads):
            keep = np.isfinite(f[k])  # pysteps' contingency counts NaN as "no event": pass valid pixels only
            for t in CATEGORICAL_THRESHOLDS_MMH:
                cat.det_cat_fct_accum(contabs[t, k], f[k][keep], o[k][keep])
            spatial.fss_accum(fss[k], f[k], o[k])
            cont.det_cont_fct_accum(errors[k], f[k], o[k])
    ours = acc.result()
    for t in CATEGORICAL_THRESHOLDS_MMH:
        label = threshold_label(t)
        for k in range(n_leads):
            theirs = cat.det_cat_fct_compute(contabs[t, k], ["CSI", "POD", "FAR"])
            for name in ("CSI", "POD", "FAR"):
                np.testing.assert_allclose(
                    ours[f"{name}@{label}"][k],
                    theirs[name],
                    rtol=1e-12,
                    equal_nan=True,
                    err_msg=f"{name}@{label} lead {k}",
                )
    for k in range(n_leads):
        np.testing.assert_allclose(ours["FSS@1"][k], spatial.fss_compute(fss[k]), rtol=1e-9)
        theirs = cont.det_cont_fct_compute(errors[k], ["MAE", "ME"])
        np.testing.assert_allclose(ours["MAE"][k], theirs["MAE"], rtol=1e-6)
        np.testing.assert_allclose(ours["bias"][k], theirs["ME"], rtol=1e-6, atol=1e-9)
    # the cross-check means something only if the scores are not trivially 0, 1 or NaN
    assert 0.0 < ours["CSI@1"][0] < 1.0 and 0.0 < ours["FSS@1"][0] < 1.0 and ours["MAE"][0] > 0


def test_scores_accumulate_counts_not_average_scores():
    """A dry-ish forecast and a stormy one: the pooled CSI weights the storm, the mean would not."""
    obs = np.zeros((1, 20, 20), np.float32)
    small_obs, big_obs = obs.copy(), obs.copy()
    small_obs[0, 0, 0] = 3.0  # one rain pixel, missed
    big_obs[0, 5:15, 5:15] = 3.0  # 100 rain pixels, all hit
    acc = ScoreAccumulator(1, 1000.0)
    acc.add(np.zeros_like(small_obs), small_obs)
    acc.add(big_obs.copy(), big_obs)
    csi = acc.result()["CSI@1"][0]
    assert csi == pytest.approx(100 / 101)
    assert csi != pytest.approx(np.mean([0.0, 1.0]))


def test_merge_equals_one_accumulator():
    pairs = random_pairs(1, n=4)
    whole, part_a, part_b = (ScoreAccumulator(3, 1000.0) for _ in range(3))
    for i, (f, o) in enumerate(pairs):
        whole.add(f, o)
        (part_a if i % 2 else part_b).add(f, o)
    part_a.merge(part_b)
    np.testing.assert_equal(part_a.result(), whole.result())
    with pytest.raises(ValueError, match="cannot merge"):
        part_a.merge(ScoreAccumulator(3, 2000.0))


def test_perfect_forecast():
    yy, xx = np.mgrid[0:48, 0:48]
    field = 20.0 * np.exp(-((yy - 24) ** 2 + (xx - 20) ** 2) / 50.0)
    obs = np.stack([np.roll(field, 2 * k, axis=1) for k in range(4)]).astype(np.float32)
    obs[:, :3] = np.nan
    acc = ScoreAccumulator(4, 1000.0)
    acc.add(obs.copy(), obs)
    r = acc.result()
    for t in CATEGORICAL_THRESHOLDS_MMH:
        label = threshold_label(t)
        assert r[f"CSI@{label}"] == [1.0] * 4 and r[f"POD@{label}"] == [1.0] * 4 and r[f"FAR@{label}"] == [0.0] * 4
    assert r["FSS@1"] == [1.0] * 4 and r["MAE"] == [0.0] * 4 and r["bias"] == [0.0] * 4
    assert r["n_pixels"] == [45 * 48] * 4
    assert r["mean_forecast"] == r["mean_obs"] and r["frac_forecast_gt5"] == r["frac_obs_gt5"]


def test_empty_fields_give_nan_not_errors():
    """No rain anywhere: categorical scores and FSS are undefined (NaN), MAE is 0, and no warning."""
    dry = np.zeros((2, 16, 16), np.float32)
    no_data = np.full((2, 16, 16), np.nan, np.float32)
    acc, acc_no_data = ScoreAccumulator(2, 1000.0), ScoreAccumulator(2, 1000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        acc.add(dry, dry)
        acc_no_data.add(no_data, dry)
        r, r_no_data = acc.result(), acc_no_data.result()
    assert all(np.isnan(r[name]).all() for name in ("CSI@1", "POD@1", "FAR@1", "FSS@1"))
    assert r["MAE"] == [0.0, 0.0] and r["n_pixels"] == [256, 256]
    assert r_no_data["n_pixels"] == [0, 0] and np.isnan(r_no_data["MAE"]).all()
    # a forecast of rain where none fell: CSI 0, FAR 1, POD undefined
    wet = dry.copy()
    wet[:, 4:8, 4:8] = 2.0
    acc.add(wet, dry)
    r = acc.result()
    assert r["CSI@1"] == [0.0, 0.0] and r["FAR@1"] == [1.0, 1.0] and np.isnan(r["POD@1"]).all()
    assert r["FSS@1"] == [0.0, 0.0]


def test_exclude_mask_and_shorter_forecasts():
    f, o = random_pairs(2, n=1)[0]
    acc = ScoreAccumulator(4, 1000.0)
    exclude = np.zeros(f.shape[1:], bool)
    exclude[:, :25] = True
    acc.add(f, o, exclude)  # 3 leads into a 4-lead accumulator
    r = acc.result()
    assert r["n_forecasts"] == [1, 1, 1, 0] and np.isnan(r["MAE"][3])
    expected = (np.isfinite(f) & np.isfinite(o))[:, :, 25:].sum(axis=(1, 2))
    assert r["n_pixels"][:3] == expected.tolist()
    with pytest.raises(ValueError, match="must both be"):
        acc.add(f[0], o[0])


def test_fss_window_and_categorical_helpers():
    assert fss_window_pixels(1000.0) == 8
    assert fss_window_pixels(2500.0) == 3
    assert fss_window_pixels(500.0) == 16
    assert fss_window_pixels(20000.0) == 1
    scores = categorical_scores(np.array([3]), np.array([1]), np.array([2]))
    assert scores["CSI"][0] == pytest.approx(0.5) and scores["POD"][0] == pytest.approx(0.75)
    assert scores["FAR"][0] == pytest.approx(0.4)
