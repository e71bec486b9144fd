"""The node library, one family per module; importing it registers every node type.

``optimus.nodes.catalog.markdown_table()`` lists them all with their ports and config. Each
node's ``spec`` (`optimus.nodes.specs`) describes what it computes; ``rowwise`` says whether
rows are computed independently.
"""
from .activations import (LogSoftmax, RectifiedLinear, Sigmoid, Softmax, SoftRectifiedLinear,
                          Tanh)
from .affine import Affine, CenteredAffine, Constant, Multiply, RadialBasis
from .base import Node
from .combine import Add, Concatenate, CrossProduct, Divide, Product, Stack
from .conv import Conv2D, Conv3D
from .distances import Euclidean, SquaredEuclidean
from .elementwise import Log, Normalize, NormalizeDim, Power, Sqrt
from .losses import (CategoricalCrossEntropy, ContrastiveMargin, CrossEntropy, CrossEntropyLoss,
                     MeanSquaredError, NegativeLogLikelihood, NegativeLogLikelihoodLoss,
                     PairwiseRank, SimilarityMargin, SoftmaxCrossEntropyLoss,
                     WeightDecayPenalty)
from .pool import AvgPool, MaxPool
from .reduce import (L1Magnitude, L2Magnitude, Max, MaxNotIndex, Mean, Min, MinNotIndex,
                     SelectIndex, Sum)
from .regularize import BatchNorm, Dropout, GaussianNoise
from .shape import Dimshuffle, Flatten, Slice, SliceGT
from .specs import (ActivationSpec, BatchNormSpec, ConvSpec, DenseSpec, DropoutSpec,
                    FlattenSpec, NoiseSpec, PenaltySpec, PoolSpec)

__all__ = [
    "Node",
    # combine
    "Add", "Concatenate", "Stack", "Product", "Divide", "CrossProduct",
    # shape and reduce
    "Dimshuffle", "Flatten", "Slice", "SliceGT", "Sum", "Mean", "Max", "Min", "L1Magnitude",
    "L2Magnitude", "SelectIndex", "MaxNotIndex", "MinNotIndex",
    # elementwise
    "Log", "Sqrt", "Power", "Sigmoid", "Tanh", "RectifiedLinear", "SoftRectifiedLinear",
    "Softmax", "LogSoftmax", "Normalize", "NormalizeDim",
    # with parameters
    "Affine", "CenteredAffine", "RadialBasis", "Multiply", "Constant", "Conv3D", "Conv2D",
    "MaxPool", "AvgPool", "BatchNorm", "Dropout", "GaussianNoise",
    # distances
    "Euclidean", "SquaredEuclidean",
    # losses
    "NegativeLogLikelihoodLoss", "NegativeLogLikelihood", "CategoricalCrossEntropy",
    "SoftmaxCrossEntropyLoss", "CrossEntropy", "CrossEntropyLoss", "MeanSquaredError",
    "WeightDecayPenalty", "SimilarityMargin", "ContrastiveMargin", "PairwiseRank",
    # what nodes compute (node.spec)
    "ActivationSpec", "DenseSpec", "ConvSpec", "PoolSpec", "FlattenSpec", "DropoutSpec",
    "NoiseSpec", "BatchNormSpec", "PenaltySpec",
]
