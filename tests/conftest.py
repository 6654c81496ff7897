"""Shared helpers for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from gigafactory.core import Job, JobId, JobRequest, Locality

REPO = Path(__file__).resolve().parents[1]

# `pytest --hypothesis-profile=thorough` runs ten times the examples of tests that size theirs with the loaded profile
# (tests/test_properties.py's budget()), for a run before a release or after a change to the engine.
# Without the "explain" phase: it traces every line while shrinking, which made shrinking an engine run take
# over ten minutes.
settings.register_profile("thorough", max_examples=1000, phases=[p for p in Phase if p is not Phase.explain])
# The README's test command, and CI, draw the same examples every run: a red run is then a change's doing, not the
# draw's. Exploring new examples is the thorough profile's job (random, ten times as many).
settings.register_profile("repeatable", derandomize=True)
settings.load_profile("repeatable")


def _data_dir() -> Path:
    """The shared data sets: $GIGAFACTORY_DATA, else ../shared/data beside the checkout, else /work/shared/data."""
    if "GIGAFACTORY_DATA" in os.environ:
        return Path(os.environ["GIGAFACTORY_DATA"])
    for candidate in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "data"


DATA = _data_dir()


def make_job(
    i: int,
    gpus: int = 1,
    submit: float = 0.0,
    est: float | None = None,
    *,
    milli: int = 1000,
    cpu: int = 0,
    mem: int = 0,
    models: tuple[str, ...] | None = None,
    locality: Locality = Locality.ANY,
    tenant: str = "default",
    priority: int = 0,
    gang: bool = True,
) -> Job:
    return Job(
        JobId(i),
        JobRequest(gpus=gpus, gpu_milli=milli, cpu_milli=cpu, mem_mib=mem, models=models, locality=locality, gang=gang),
        submit_s=submit,
        tenant=tenant,
        estimate_s=est,
        priority=priority,
    )


@pytest.fixture
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}; set GIGAFACTORY_DATA")
    return DATA
