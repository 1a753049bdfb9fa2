"""The Dask client a stage hands its tasks to: a running scheduler, an embedded local cluster, or
none (in-process). Used by extraction (birdclef_eos/audio/cluster.py) and by the heads' folds
(birdclef_eos/heads/crossval.py `train_folds(client=...)`); docs/scaling.md.
"""
from __future__ import annotations


class open_client:
    """``with open_client(address, workers) as client``: a Dask client on the running scheduler at
    ``address`` (``tcp://host:8786``), else on an embedded local cluster of ``workers`` processes,
    one thread each (the runner's own threads do the work); None when ``workers`` is 1 and no
    address is given (the caller runs in-process). ``knob`` names the settings in errors."""

    def __init__(self, address: str | None, workers: int, knob: str = "runtime.scheduler / runtime.workers"):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"{knob}: workers must be a whole number of at least 1, not {workers!r}")
        self.address, self.workers, self.knob = address or None, workers, knob
        self.client = self.cluster = None

    def __enter__(self):
        if self.address is None and self.workers == 1:
            return None
        from distributed import Client, LocalCluster

        if self.address is not None:
            try:
                self.client = Client(self.address, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise RuntimeError(f"{self.knob}: no Dask scheduler answers at {self.address!r} ({exc}); "
                                   "start one (`dask scheduler`) or set runtime.scheduler: null") from exc
            return self.client
        self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                    dashboard_address=None)
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False
