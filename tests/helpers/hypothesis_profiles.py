"""Hypothesis profiles of the property-based tests, and their example budgets.

- ``"ci"`` (the default): derandomised (the same examples on every run, so a failure is
  reproducible and the run time is fixed), no example database, no deadline (the Triton
  interpreter is slow on a first call), each test's example budget as written, and no
  shrinking (shrinking a failure of the interpreted kernels can take many minutes; the failing
  example is reported as found).
- ``"thorough"``: random examples, ten times each budget, failures shrunk to a minimal
  example; for a long local search.

``WDSR_FAST_HYPOTHESIS_PROFILE`` picks the profile. Test modules call :func:`load` and size
each test with :func:`budget`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

ENV_VAR = "WDSR_FAST_HYPOTHESIS_PROFILE"
_SCALE = {"ci": 1, "thorough": 10}
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_IS_FINE,
    phases=(Phase.explicit, Phase.generate),
)
settings.register_profile(
    "thorough", deadline=None, print_blob=True, suppress_health_check=_SLOW_IS_FINE
)


def profile_name() -> str:
    """The profile to run: ``WDSR_FAST_HYPOTHESIS_PROFILE`` or ``"ci"``."""
    name = os.environ.get(ENV_VAR, "ci")
    if name not in _SCALE:
        raise ValueError(f"{ENV_VAR} must be one of {sorted(_SCALE)}, got {name!r}")
    return name


def load() -> None:
    """Make the chosen profile the default of the calling test module's tests."""
    settings.load_profile(profile_name())


def budget(examples: int, **kwargs: object) -> settings:
    """Settings running ``examples`` examples (times the profile's scale), plus ``kwargs``."""
    return settings(max_examples=examples * _SCALE[profile_name()], **kwargs)
