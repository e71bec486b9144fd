"""Step rules: thin, serialisable wrappers of `torch.optim` optimizers, and their state as
plain data for checkpoints."""
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .base import StepRule
from .rmsprop import RMSProp
from .sgd import SGD
from .state import load_optimizer_state, optimizer_state

__all__ = ["StepRule", "SGD", "Adam", "AdamW", "RMSProp", "Adagrad", "optimizer_state",
           "load_optimizer_state"]
