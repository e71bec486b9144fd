"""Driver extensions: small classes with a few hooks, one concept each."""
from .save_checkpoint import SaveCheckpoint
from .csv_log import CSVLog
from .every import Every, Periodic
from .lr_schedule import ReduceLROnPlateau
from .monitor import Monitor
from .progress import ProgressBar
from .save_best import SaveBest
from .stopping import EarlyStopping, FinishAfter
from .tensorboard import TensorBoard
from .tracking import BestTracker

__all__ = ["Monitor", "SaveBest", "SaveCheckpoint", "FinishAfter", "EarlyStopping",
           "ReduceLROnPlateau", "ProgressBar", "CSVLog", "Every", "Periodic", "BestTracker", "TensorBoard"]
