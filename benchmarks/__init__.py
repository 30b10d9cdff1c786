"""Benchmarks: every method pruned, trained, exported and measured the same way.

``tools/bench`` runs tiers; ``BENCHMARKS.md`` is
generated from ``tools/results/*.jsonl``. A pruning method adds rows through
:class:`~benchmarks.methods.Method` in :mod:`benchmarks.catalog`.

Example:
    >>> from benchmarks.tiers import TIERS
    >>> sorted(TIERS)
    ['full', 'quick', 'standard']
"""
