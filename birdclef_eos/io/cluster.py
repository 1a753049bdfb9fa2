"""The Dask client a stage hands its tasks to: a running scheduler, an embedded local cluster, or
none (in-process); and `map_tasks`, which runs independent calls (folds) on that client or here.
Used by extraction and sidecar_features (their shards, birdclef_eos/audio/cluster.py), the heads'
folds (birdclef_eos/heads/crossval.py `train_folds(client=...)`, the ViT's included) and the chain's
ProtoSSM and SED folds (birdclef_eos/chain/protossm.py, sed.py `fold_task`); docs/scaling.md.
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
        import dask

        # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc hand freed
        # memory back at once: torch training that allocates large temporaries (the SED's convolutions)
        # then takes twice the CPU time (measured, docs/scaling.md). Unset, the workers keep glibc's
        # default, as the in-process run does; the allocator moves no byte of any result.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
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


def map_tasks(client, fn, calls: list[dict], shared: dict | None = None):
    """``fn(**call, **shared)`` for every call, in call order: in this process when ``client`` is None
    (lazily, one call at a time), else one task per call on the client's workers. ``shared`` holds
    what every call reads (features, targets, ...): on a cluster it goes to every worker once
    (``scatter(broadcast=True)``), not once per task; keep per-call arguments small (masks, indices,
    seeds). ``fn`` must be a module-level function (picklable). A task's error is raised here, as
    the in-process call's would be. Used by the heads' folds (birdclef_eos/heads/crossval.py), the
    chain's ProtoSSM and SED folds and the ViT's; extraction shards go through
    birdclef_eos/audio/cluster.py."""
    shared = dict(shared or {})
    overlap = sorted({key for call in calls for key in call if key in shared})
    if overlap:
        raise ValueError(f"map_tasks: {overlap} given both per call and shared")
    if client is None:
        return (fn(**call, **shared) for call in calls)
    big = [key for key, value in shared.items() if value is not None]
    sent = {key: value for key, value in shared.items() if value is None}
    if big:   # to every worker once; the tasks name the scattered data, they do not carry it
        sent.update(zip(big, client.scatter([shared[key] for key in big], broadcast=True)))
    futures = [client.submit(fn, **call, **sent, pure=False) for call in calls]
    return (future.result() for future in futures)
