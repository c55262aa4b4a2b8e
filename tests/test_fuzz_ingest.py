"""500 mutated radar files ingested among good ones: no crash, nothing good lost, nothing changed.

The store first holds half of the KNMI archive. Then the other half arrives mixed with 500
mutants of real files (KNMI, RMI, OPERA, BOM): damaged bytes, wrong attributes and shapes,
absurd values, all-missing fields, wrong times. Every mutant must end quarantined with a
reason that names it, or read correctly (then its time is already taken: a duplicate); every
good file lands; the rows already in the store do not change.
"""

from __future__ import annotations

import collections
import logging

import numpy as np
import pytest

from nowcast import store
from nowcast.config import validate
from nowcast.ingest import manifest
from nowcast.ingest.config import IngestConfig
from nowcast.ingest.readers import read_scan
from nowcast.ingest.run import run_ingest
from tests.mutants import make_mutants
from tests.readers_helpers import KNMI_DIR

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)


def test_fuzzed_archive(tmp_path):
    knmi = sorted(KNMI_DIR.glob("*.h5"))
    if not knmi:
        pytest.skip("the shared radar data is not checked out")
    first, second = knmi[: len(knmi) // 2], knmi[len(knmi) // 2 :]
    dst = tmp_path / "knmi.zarr"

    def config(paths):
        return validate(
            IngestConfig,
            {
                "source": {"paths": [str(p) for p in paths]},
                "store": {"path": str(dst), "chunk_time": 6},
                "engine": {"name": "serial"},
            },
        )

    run_ingest(config(first), progress=False)
    before = store.StoreReader(str(dst))
    rows_before = before.read(0, before.n_times)

    mutants = make_mutants(tmp_path / "mutants", first, n=500, seed=7)
    summary = run_ingest(config([*second, *mutants]), progress=False)

    records = manifest.read_manifest(str(dst))
    outcomes = collections.Counter()
    for path, kind in mutants.items():
        record = records[str(path.resolve())]
        outcomes[record.status] += 1
        if record.status == "quarantined":
            assert path.name in record.reason, record.reason
        else:
            assert record.status == "duplicate", (kind, record)
            read_scan(str(path))  # it does read: then its time is one already in the store
    for path in second:
        assert records[str(path.resolve())].status == "ingested"
    after = store.StoreReader(str(dst))
    assert after.n_times == len(knmi) and after.valid.all()
    np.testing.assert_array_equal(after.read(0, len(rows_before)), rows_before)
    for path in second[::9]:  # the good files hold what a direct read gives
        scan = read_scan(str(path))
        row = int(after.layout.index_of(scan.time))
        np.testing.assert_allclose(after.read(row, row + 1)[0], scan.rain_rate, atol=0.005)
    assert summary.counts["ingested"] == len(second)
    assert outcomes["quarantined"] + outcomes["duplicate"] == 500
    log.warning("fuzz outcomes: %s", dict(outcomes))
