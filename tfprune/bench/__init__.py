"""Benchmarks: every method pruned, trained, exported and measured the same way.

``tools/bench`` (or ``tfprune bench``) runs tiers; ``BENCHMARKS.md`` is
generated from ``tools/results/*.jsonl``. A pruning method adds rows through
:class:`~tfprune.bench.methods.Method` in :mod:`tfprune.bench.catalog`.

Example:
    >>> from tfprune.bench.tiers import TIERS
    >>> sorted(TIERS)
    ['full', 'quick', 'standard']
"""
