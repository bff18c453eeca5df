import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _small_inversion(request, monkeypatch):
    """Inputs inverted from the class scores (the default moment model of fully connected
    classifiers) made from 256 inputs in 60 steps instead of 2,048 in 300, so that the suite
    stays fast; tests marked ``library_inversion`` keep the library's sizes."""
    if "library_inversion" not in request.keywords:
        from coreprune.pruning import pruner

        monkeypatch.setitem(pruner.SYNTHESIS_DEFAULTS, "inverted", (256, 60))
