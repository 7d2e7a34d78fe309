"""Hypothesis profiles for the security suite.

`make test` runs the fuzz tests bounded (each test names its own small example count, see
_fuzz_support.fuzz_settings); `make fuzz` sets HYPOTHESIS_PROFILE=fuzz, which loads the profile below for
the whole run: many more examples per test and a longer deadline per example."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

FUZZ_PROFILE = "fuzz"

settings.register_profile(
    FUZZ_PROFILE,
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "1500")),
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
if os.environ.get("HYPOTHESIS_PROFILE") == FUZZ_PROFILE:
    settings.load_profile(FUZZ_PROFILE)
