"""Renamed keywords and moved names: one release of ``DeprecationWarning``, then gone.

tfprune's vocabulary is ``sparsity`` (the share removed) and ``keep`` (the share
kept); older keywords (``ratio``, ``ratios``) still work for one release.

Example:
    >>> resolve_renamed(0.5, None, "sparsity", "ratio", "l1_filter_pruning")
    0.5
"""

from __future__ import annotations

import warnings
from typing import Any


def resolve_renamed(new: Any, old: Any, new_name: str, old_name: str, function: str) -> Any:
    """The value of a renamed keyword: ``new``, or ``old`` with a ``DeprecationWarning``.

    ``None`` means not given; both given is a ``TypeError``, neither too.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     resolve_renamed(None, 0.25, "keep", "ratios", "arsp")
        0.25
        >>> str(caught[0].message)
        'arsp(ratios=...) is deprecated; use keep='
    """
    if old is None:
        if new is None:
            raise TypeError(f"{function}() needs {new_name}=")
        return new
    if new is not None:
        raise TypeError(f"{function}() got both {new_name}= and its old name {old_name}=; give {new_name}= only")
    warnings.warn(f"{function}({old_name}=...) is deprecated; use {new_name}=", DeprecationWarning, stacklevel=3)
    return old
