"""The one check of a seed, for every command and function that takes one."""

from __future__ import annotations

import numbers

from nlpkit.errors import ConfigError

# The largest seed every consumer accepts: fastText stores it as a C int (numpy, torch and
# scikit-learn take more).
MAX_SEED = 2**31 - 1


def check_seed(seed, option: str = "--seed") -> int:
    """``seed`` as an int; a ConfigError unless it is a whole number from 0 to :data:`MAX_SEED`."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{option} must be a whole number from 0 to {MAX_SEED}; got {seed!r}.")
    return int(seed)
