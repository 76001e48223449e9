"""Experiments: a typed run config and the named hparams sets, the recipe that builds a run,
running it to a run record, and sweeps over grids of configs."""
