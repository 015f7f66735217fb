import os
from pathlib import Path

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network, whatever the caller set
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    """A test (or library code it calls) that leaves autograd switched off globally breaks every later test's
    backward pass far from the cause (seen: a bench's torch.set_grad_enabled(False)): fail the culprit instead."""
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("this test left torch's grad mode disabled; use torch.no_grad() as a context or decorator")


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.exists():
        pytest.skip(f"real data not found at {REALDATA}")
    return REALDATA


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
    """A random ``tiny`` checkpoint with the SynthHeads expression space (pipeline, CLI tests)."""
    from app_fixtures import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="session")
def capture_dir(tmp_path_factory):
    """One 4-view 64² SynthHeads capture folder."""
    from app_fixtures import make_capture

    return make_capture(tmp_path_factory.mktemp("synth"), views=4, size=64)
