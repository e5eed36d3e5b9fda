import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))  # small tensors: 1 thread is fastest here


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
