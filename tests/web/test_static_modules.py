"""The dashboard's ES modules: served as JavaScript under one versioned URL tree, imports inside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import starlette.responses

from goliat_monitor.server.pages import STATIC_DIR, STATIC_VERSION, static_version
from tests.api.helpers import create_study, heartbeat
from tests.conftest import LiveServer

IMPORT = re.compile(
    r"""^\s*import\s+(?:[^"']*\sfrom\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']""", re.M
)
MODULE_TAG = re.compile(r'<script type="module" src="([^"]+)"></script>')
MODULES = sorted(p for p in STATIC_DIR.rglob("*.js") if p.name != "boot.js")


def test_every_import_is_relative_and_names_a_file_that_exists() -> None:
    """A relative import resolves under the importer's versioned URL, so it is versioned too."""
    seen = 0
    for module in MODULES:
        for match in IMPORT.finditer(module.read_text()):
            specifier = match.group(1) or match.group(2)
            seen += 1
            assert specifier.startswith(("./", "../")), f"{module.name} imports {specifier}"
            target = (module.parent / specifier).resolve()
            assert target.is_file() and STATIC_DIR in target.parents, f"{module.name} imports {specifier}"
    assert seen > len(MODULES)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_each_page_loads_its_own_module_as_javascript_that_never_goes_stale(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some hosts' MIME tables call .js text/plain; browsers then refuse to run it as a module.
    monkeypatch.setattr(starlette.responses, "guess_type", lambda *args, **kwargs: ("text/plain", None))
    heartbeat(server.client, hostname="node")
    worker_id = server.client.get("/api/workers").json()[0]["id"]
    study_id = create_study(server.client)["id"]
    expected = {
        "/": "pages/overview.js",
        f"/workers/{worker_id}": "pages/worker.js",
        "/super-studies": "pages/super-studies.js",
        "/search": "pages/search.js",
        f"/super-studies/{study_id}": "pages/super-study.js",
        "/workers/no-such-worker": "pages/not-found.js",
    }
    for path, module in expected.items():
        assert MODULE_TAG.findall(server.client.get(path).text) == [f"/static/{STATIC_VERSION}/{module}"]
    for module_file in [*MODULES, STATIC_DIR / "boot.js"]:
        response = server.client.get(
            f"/static/{STATIC_VERSION}/{module_file.relative_to(STATIC_DIR).as_posix()}"
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_old_version_gets_todays_files_uncached_and_plain_paths_still_work(server: LiveServer) -> None:
    old = server.client.get("/static/000000000000/lib/dom.js")
    assert old.status_code == 200 and old.headers["cache-control"] == "no-cache"
    assert old.text == (STATIC_DIR / "lib" / "dom.js").read_text()
    plain = server.client.get("/static/app.css")
    assert plain.status_code == 200 and "cache-control" not in plain.headers
    assert server.client.get(f"/static/{STATIC_VERSION}/lib/missing.js").status_code == 404


def test_the_version_follows_every_file_in_every_folder(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "app.js").write_text("export const a = 1;\n")
    (tmp_path / "lib" / "dom.js").write_text("export const b = 2;\n")
    first = static_version(tmp_path)
    assert static_version(tmp_path) == first
    (tmp_path / "lib" / "dom.js").write_text("export const b = 3;\n")
    edited = static_version(tmp_path)
    (tmp_path / "lib" / "dom.js").rename(tmp_path / "lib" / "format.js")
    renamed = static_version(tmp_path)
    assert len({first, edited, renamed}) == 3
