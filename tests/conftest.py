"""Test-wide settings.

Under CI (``CI`` set in the environment) hypothesis runs derandomized: every test draws the same
examples on every run, so a CI result is reproducible; locally the examples vary from run to run
(more coverage over time).  ``tests/`` is put on sys.path for the shared helpers (_onnx_util ...).
"""
from __future__ import annotations

import os
import sys

from hypothesis import settings, HealthCheck

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("ci", derandomize=True, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
