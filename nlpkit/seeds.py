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


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """``"1,2,3"`` as ``[1, 2, 3]``: whole numbers from 0 to :data:`MAX_SEED`, each once; a one-line
    ConfigError otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ConfigError(f"{option} needs seeds separated by commas, e.g. {option} 1,2,3; got {text!r}.")
    seeds = []
    for part in parts:
        if not part.isdigit():
            raise ConfigError(f"{option}: {part!r} is not a seed (a whole number from 0 to {MAX_SEED}); "
                              f"write e.g. {option} 1,2,3.")
        seeds.append(check_seed(int(part), option))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"{option} gives seed {repeated[0]} more than once; each seed trains one run, give it once.")
    return seeds


def seeds_option(seed: int | None, seeds: str | None) -> list[int]:
    """The seeds a command runs with, from its ``--seed`` and ``--seeds`` (default: seed 0)."""
    if seed is not None and seeds is not None:
        raise ConfigError("give --seed or --seeds, not both (--seeds 1,2,3 trains one run per seed).")
    if seeds is not None:
        return parse_seeds(seeds)
    return [check_seed(0 if seed is None else seed)]
