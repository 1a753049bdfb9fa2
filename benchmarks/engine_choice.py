"""Dask distributed against Ray, briefly: start-up of a 2-worker local cluster, 64 small numpy tasks,
shut-down. Run each engine in its own process: `python benchmarks/engine_choice.py dask|ray`
(OMP_NUM_THREADS=1). Ray is not a project dependency: it was measured from a scratch
`pip install --target` folder on PYTHONPATH. Results: benchmarks/results/engine_choice.json.
"""
import sys
import time

import numpy as np


def work(i):
    a = np.random.default_rng(i).standard_normal((300, 300)).astype(np.float32)
    for _ in range(20):
        a = np.tanh(a @ a.T / 300)
    return float(a.sum())


if __name__ == "__main__":
    eng = sys.argv[1]
    t0 = time.perf_counter()
    if eng == "dask":
        from distributed import Client, LocalCluster
        cl = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        c = Client(cl)
        t1 = time.perf_counter()
        r = c.gather(c.map(work, range(64)))
        t2 = time.perf_counter()
        c.close()
        cl.close()
    else:
        import ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        w = ray.remote(work)
        t1 = time.perf_counter()
        r = ray.get([w.remote(i) for i in range(64)])
        t2 = time.perf_counter()
        ray.shutdown()
    t3 = time.perf_counter()
    print(eng, f"start {t1-t0:.2f}s tasks64 {t2-t1:.2f}s stop {t3-t2:.2f}s")
