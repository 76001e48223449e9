"""Experiments: a typed run config and the named hparams sets, the recipe that builds a run,
running it to a run record, and sweeps over grids of configs."""

# The labels a run may carry: CI-sized, the largest honest run on 2 CPU cores, the published recipe.
PROFILES = ("smoke", "cpu", "paper")
# Where a run writes its record when the caller names no folder (relative to the working directory).
RESULTS_DIR = "runs"
