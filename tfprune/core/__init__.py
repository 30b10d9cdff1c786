"""The core every method stands on: what to prune, the masks, the surgery, the scores, the counts.

Modules: ``graph`` (which channels are tied, and which layers read them),
``masks`` (``MaskedLayer``, ``wrap``, ``strip``), ``surgery`` (cut channels out of
a model, outputs unchanged), ``scores`` (magnitude, SNIP, GraSP, SynFlow, Taylor,
ARSP survival), ``count`` (kernels, nonzeros, int8 bytes, MACs). The core imports
only :mod:`tfprune.keras_model` below it.

Example:
    >>> from tfprune.core import count
    >>> count.__name__
    'tfprune.core.count'
"""
