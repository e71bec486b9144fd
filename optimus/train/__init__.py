"""Training: the `Driver` loop, its extensions, metrics, statistics and checkpoints."""
from .checkpoint import Checkpoint, load_checkpoint, restore_graph, save_checkpoint
from .driver import Driver
from .extension import Extension
from .extensions import (CSVLog, EarlyStopping, FinishAfter, Monitor, ProgressBar,
                         ReduceLROnPlateau, SaveBest, SaveCheckpoint)
from .extensions.tensorboard import TensorBoard
from .metrics import accuracy, error_rate
from .stats import Stats

__all__ = ["Driver", "Extension", "Stats", "Checkpoint", "save_checkpoint", "load_checkpoint",
           "restore_graph", "accuracy", "error_rate", "Monitor", "SaveBest", "SaveCheckpoint",
           "FinishAfter", "EarlyStopping", "ReduceLROnPlateau", "ProgressBar", "CSVLog",
           "TensorBoard"]
