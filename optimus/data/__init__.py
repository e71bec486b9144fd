"""Data sources for `Driver.fit` and monitors: iterables of dicts keyed by a graph's input
names; schemes choose each batch's rows, transformers change batches on the fly."""
from .schemes import Scheme, SequentialScheme, ShuffledScheme
from .streams import (DataStream, LoaderStream, Stream, batch_size_of, minibatch,
                      open_epoch)
from .transformers import AddNoise, Cast, FlattenFeatures, Map, Scale, Transformer

__all__ = ["minibatch", "Stream", "DataStream", "LoaderStream", "open_epoch", "batch_size_of",
           "Scheme", "SequentialScheme", "ShuffledScheme",
           "Transformer", "FlattenFeatures", "Cast", "Scale", "AddNoise", "Map"]
