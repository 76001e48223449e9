"""One training loop for every method: the :class:`Trainer`, its metrics and checkpoints."""

from bnnlib.train.trainer import CHECKPOINT_NAME, Trainer, TrainingDiverged, TrainingInterrupted

__all__ = ["CHECKPOINT_NAME", "Trainer", "TrainingDiverged", "TrainingInterrupted"]
