"""Step rules: thin, serialisable wrappers of `torch.optim` optimizers."""
from .base import StepRule
from .sgd import SGD

__all__ = ["StepRule", "SGD"]
