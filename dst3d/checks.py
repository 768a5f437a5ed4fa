"""Number checks shared by the settings validators."""

from __future__ import annotations

import numpy as np


def is_integer(value: object) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An int or float (numpy's too), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
