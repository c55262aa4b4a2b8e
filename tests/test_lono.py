"""Leave-one-network-out driver: folds, leads per network, and the table's derived scores."""

from __future__ import annotations

import numpy as np
import pytest

from nowcast.experiments import lono
from nowcast.store import write_mock_store
from nowcast.verify.metrics import categorical_scores


def test_networks_file_lists_every_real_network_once():
    networks = lono.load_networks()
    assert set(networks) == {"knmi", "rmi", "opera", "bom"}
    stores = [store for group in networks.values() for store in group]
    assert len(stores) == len(set(stores))


def test_scores_are_read_at_the_network_own_leads():
    five, ten, six = [5.0 * k for k in range(1, 13)], [10.0 * k for k in range(1, 7)], [6.0 * k for k in range(1, 11)]
    scores = list(range(12))
    assert lono._at_minutes(scores, five, 30) == 5 and lono._at_minutes(scores, five, 60) == 11
    assert lono._at_minutes(scores, ten, 30) == 2 and lono._at_minutes(scores, ten, 5) is None
    assert lono._at_minutes(scores, ten, 15) is None  # between two 10-min leads: no score invented
    assert lono._at_minutes(scores, six, 5) == 0 and lono._at_minutes(scores, six, 60) == 9
    assert lono._at_minutes(scores, five, 90) is None


def test_frequency_bias_is_forecast_over_observed_events():
    hits, misses, false_alarms = np.array([[30.0, 10.0]]), np.array([[10.0, 10.0]]), np.array([[20.0, 0.0]])
    cat = categorical_scores(hits, misses, false_alarms)
    scores = {"POD@1": cat["POD"][0].tolist(), "FAR@1": cat["FAR"][0].tolist()}
    fbi = lono._with_frequency_bias(scores)["FBI@1"]
    np.testing.assert_allclose(fbi, ((hits + false_alarms) / (hits + misses))[0])


@pytest.mark.parametrize("step_s, expected", [(300, 12), (600, 6), (900, 4), (360, 10)])
def test_leads_reach_one_hour_at_any_step(tmp_path, step_s, expected):
    store = write_mock_store(str(tmp_path / "s.zarr"), n_times=4, shape=(8, 8), missing=(), time_step_s=step_s)
    assert lono.leads_within(store.path) == expected
