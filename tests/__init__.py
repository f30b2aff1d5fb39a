"""
xmeet's tests, run with C{python3 -m twisted.trial tests}.

Hypothesis runs without its per-example deadline and speed health check:
speed is measured in C{bench/}, never asserted in unit tests, and the
machine that runs these is shared with other test runs.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("xmeet", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("xmeet")
