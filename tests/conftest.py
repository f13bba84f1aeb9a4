import os
from pathlib import Path

import pytest
import torch
from locations import SHARED

torch.set_num_threads(2)


@pytest.fixture(params=["cpu-division", "cuda-division"])
def shared_dir(request) -> Path:
    """The ../shared folder beside the clone (golden files, frost textures); skip when absent.

    Every golden-file test runs twice: with the CPU's arithmetic, and with division by a Python
    number done as CUDA does it (multiplication by the reciprocal, tests/cuda_arith.py), so the
    bit-exact promise is held for the GPU without a GPU."""
    if not (SHARED / "golden" / "cifar10c").is_dir():
        pytest.skip(f"../shared not found at {SHARED}: golden-file tests need it beside the clone")
    if request.param == "cpu-division":
        yield SHARED
        return
    from cuda_arith import CudaScalarDivision

    with CudaScalarDivision():
        yield SHARED


@pytest.fixture
def photographs(monkeypatch):
    """The official frost photographs from ../shared/frost (read, never copied into the repo), found
    the way an installed imagecorruptions package is; skip when absent."""
    from robench.corruptions import frost_textures

    folder = SHARED / "frost"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    monkeypatch.setattr(frost_textures, "package_frost_dirs", lambda: [folder])
    frost_textures.clear_cache()
    yield folder
    frost_textures.clear_cache()


@pytest.fixture(scope="module")
def one_thread():
    """For modules of small-tensor tests: one torch thread avoids thread hand-offs on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Never touch the user's ~/.cache/robench from a test."""
    if "ROBENCH_DATA" not in os.environ or not os.environ["ROBENCH_DATA"].startswith(str(tmp_path_factory.getbasetemp())):
        monkeypatch.setenv("ROBENCH_DATA", str(tmp_path_factory.mktemp("robench-data")))
    from robench.data import download

    download.set_data_dir(None)
