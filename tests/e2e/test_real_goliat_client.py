"""GOLIAT's own, unmodified client code against a real server: an optional extra.

Set `GOLIAT_SOURCE_DIR` to a GOLIAT checkout (the folder holding `goliat/utils/http_client.py`),
and `GOLIAT_PYTHON` to a Python that has GOLIAT's requirements (`requests`, `colorama`; default:
this one). Without `GOLIAT_SOURCE_DIR` the test is skipped: `tests/goliat_client.py` pins the same
wire format from our own description of it, and the screenshot tests run on that always.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.accounts import bearer, private_server
from tests.conftest import LiveServer
from tests.goliat_client import GOLIAT_FIELDS, GOLIAT_TABS

pytestmark = pytest.mark.slow

MACHINE = "198.51.100.77"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"

# Loads GOLIAT's http_client module by path, without goliat/utils/__init__ (which imports the
# Sim4Life stack), then calls it exactly as GOLIAT's web bridge does.
_DRIVER = """
import importlib.util, logging, sys, types
source, url, machine = sys.argv[1:4]
sys.path.insert(0, source)
utils = types.ModuleType("goliat.utils")
utils.__path__ = [source + "/goliat/utils"]
sys.modules["goliat.utils"] = utils
spec = importlib.util.spec_from_file_location("goliat.utils.http_client", source + "/goliat/utils/http_client.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
client = module.HTTPClient(url, machine, logging.getLogger("goliat"))
assert client.post_heartbeat({"hostname": "real-goliat"}), "heartbeat refused"
jpeg = bytes.fromhex(sys.argv[4])
assert client.post_gui_screenshots({tab: jpeg for tab in sys.argv[5:]}), "screenshots refused"
"""


@pytest.fixture
def goliat_source() -> Path:
    folder = os.environ.get("GOLIAT_SOURCE_DIR", "")
    if not folder:
        pytest.skip("GOLIAT_SOURCE_DIR is not set (optional: a checkout of GOLIAT's own code)")
    path = Path(folder)
    if not (path / "goliat" / "utils" / "http_client.py").is_file():
        pytest.fail(f"GOLIAT_SOURCE_DIR={folder!r} holds no goliat/utils/http_client.py")
    return path


def test_goliats_own_client_stores_every_tab(server: LiveServer, goliat_source: Path) -> None:
    python = os.environ.get("GOLIAT_PYTHON", sys.executable)
    argv = [python, "-c", _DRIVER, str(goliat_source), server.url, MACHINE, JPEG.hex(), *GOLIAT_TABS]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    (worker,) = server.client.get("/api/workers").json()
    for field in GOLIAT_FIELDS:
        answer = server.client.get(f"/api/workers/{worker['id']}/screenshots/{quote(field, safe='')}")
        assert answer.status_code == 200, field
        assert answer.content == JPEG


def test_goliats_own_client_works_on_a_private_server_through_the_token_prefix(
    make_server: Callable[..., LiveServer], goliat_source: Path
) -> None:
    server = private_server(make_server, worker_token="w-secret")
    python = os.environ.get("GOLIAT_PYTHON", sys.executable)
    url = f"{server.url}/t/w-secret"
    argv = [python, "-c", _DRIVER, str(goliat_source), url, MACHINE, JPEG.hex(), *GOLIAT_TABS]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert server.client.get("/api/workers").status_code == 401
    (worker,) = server.client.get("/api/workers", headers=bearer("viewer")).json()
    assert worker["hostname"] == "real-goliat"
