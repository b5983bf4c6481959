import os

from hypothesis import HealthCheck, settings

# "ci" (default) is quick; HYPOTHESIS_PROFILE=soak a few minutes; long about ten.
settings.register_profile("ci", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("soak", max_examples=400, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("long", max_examples=20000, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
