"""The pruning methods, side by side: each one turns a model into a smaller one.

Modules: ``channels`` (L1, Taylor and random channel pruning of a trained
model), ``pai`` (pruning at initialization: random, magnitude, SNIP, GraSP,
SynFlow masks), ``reconvene`` (seed 002: structured pruning at initialization),
``qsae`` (seed 000: dynamic sparsity from a quantized sparse autoencoder),
``binary`` (seed 001: binary networks pruned by adaptive reservoir sampling).
Methods stand on :mod:`tfprune.core` and may export through :mod:`tfprune.deploy`.

Example:
    >>> from tfprune.prune import channels
    >>> channels.__name__
    'tfprune.prune.channels'
"""
