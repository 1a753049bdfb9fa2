"""Fixtures shared by the whole test tree."""
from __future__ import annotations

import os

import pytest


class TwoWorkers:
    """A running Dask cluster of two worker processes, one thread each (what `open_client(None, 2)`
    embeds), shared by the tests that compare two workers' bytes with the in-process ones. Starting a
    cluster and importing torch in its workers took 7 to 9 s per test; one cluster per session pays
    that once. Stage tests hand it to a stage as `runtime.scheduler` (open_client's running-scheduler
    path); the embedded path is what this fixture itself runs, and tests/birdclef_eos/audio/test_cluster.py
    runs its own embedded cluster (one of whose workers it kills)."""

    def __init__(self, client):
        self.client = client

    def here(self):
        """The client, its two workers in this process's working folder (as a cluster started now would
        be: stage tests chdir into their tmp folder, and tasks read relative paths)."""
        self.client.wait_for_workers(2, timeout=120)
        self.client.run(os.chdir, os.getcwd())
        return self.client

    def runtime(self, **knobs) -> dict:
        """The `runtime:` section (params.yaml's, ``knobs`` on top) that sends a stage's tasks to these workers."""
        from tests.fakes.runtime import runtime

        self.here()
        return runtime(**knobs, workers=2, scheduler=self.client.scheduler.address)


@pytest.fixture(scope="session")
def two_workers():
    from birdclef_eos.io.cluster import open_client

    with open_client(None, 2) as client:
        yield TwoWorkers(client)
