"""Ready-made datasets as NumPy arrays: MNIST and the LXMLS Amazon sentiment corpus.

Files are looked up under a ``data_dir`` argument, then ``$OPTIMUS_DATA``, then the user cache
folder (see `optimus.datasets.files`).
"""

from . import mnist, sentiment

__all__ = ["mnist", "sentiment"]
