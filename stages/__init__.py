"""The pipeline package: one module per DVC stage plus the domain modules they share.

Stage modules (dataset, checkpoint, surgery, probe, extract, train, predict, leaderboard)
expose ``PARAMS`` (the params.yaml sections they read) and ``run(params, key=None)``.
They import domain modules, never another stage module.
"""
