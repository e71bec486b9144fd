"""The node library, one family per module; importing it registers every node type."""
from .activations import Softmax
from .affine import Affine
from .base import Node
from .conv import Conv3D
from .losses import NegativeLogLikelihoodLoss

__all__ = ["Node", "Affine", "Conv3D", "Softmax", "NegativeLogLikelihoodLoss"]
