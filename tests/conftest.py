import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)

from helpers import make_tiny_voc  # noqa: E402


@pytest.fixture(scope="session")
def tiny_voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_voc(tmp_path_factory.mktemp("voc"))
