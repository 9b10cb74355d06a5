import os

from hypothesis import settings

# CI runs the full example counts; a quick local run can set HYPOTHESIS_PROFILE=dev.
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
