"""robench.runfolder.checkpoints: a checkpoint loads with `weights_only`, so one that would run code
when unpickled is refused without running it."""

from pathlib import Path

import pytest
import torch

from robench.errors import RobenchError
from robench.runfolder.checkpoints import load_checkpoint


class _Payload:
    """Unpickling this runs code (writes a marker file): what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"model": "small-cnn", "num_classes": 10, "state_dict": {}, "extra": _Payload(marker)},
               tmp_path / "checkpoint.pt")
    with pytest.raises(RobenchError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path)
    assert not marker.exists()
    torch.load(tmp_path / "checkpoint.pt", weights_only=False)  # the test can fail: a full unpickle runs it
    assert marker.read_text() == "pwned"
