"""The documentation site builds (`mkdocs build --strict`) and renders in a browser.

Runs once per `make test`, in the tensorflow process (the site does not depend on
the backend). The build is the one `make docs` runs, into a temporary folder, in a
subprocess that reports which heavy modules it imported: the API pages are read
statically by griffe and the notebooks are rendered from their stored outputs, so
the build must import neither Keras nor a backend. Then one headless Chromium
(Debian's `chromium`, driven by Playwright) opens the home page and an API page,
served over HTTP from this process as a host would serve them, checks that they
render (title, navigation, a code block) without a script error, and saves a
screenshot of each into test-logs/, the artifact of the run.
"""

import ast
import contextlib
import functools
import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import keras
import pytest

REPO = pathlib.Path(__file__).parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HEAVY = ("tensorflow", "keras", "jax", "torch", "keras_hub", "keras_mm")

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the site does not depend on the backend: built once, in the tensorflow "
    "process",
)

BUILD = """
import json, sys
from mkdocs.__main__ import cli
cli.main(["build", "--strict", "--quiet", "--site-dir", sys.argv[1]],
         standalone_mode=False)
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-c", BUILD.format(heavy=HEAVY), str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict failed:\n{result.stdout[-3000:]}"
        f"\n{result.stderr[-6000:]}"
    )
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported == [], f"the docs build imported {imported}"
    return out


def _public_names(module):
    path = REPO.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "__all__":
            return [ast.literal_eval(e) for e in node.value.elts]
    return []


def test_every_public_name_has_an_api_entry(site):
    pages = sorted((REPO / "docs" / "api").glob("*.md"))
    assert len(pages) >= 10
    missing = []
    for page in pages:
        modules = re.findall(r"^::: (\S+)$", page.read_text(), re.MULTILINE)
        assert modules, f"{page} has no ::: entry"
        html = (site / "api" / page.stem / "index.html").read_text(encoding="utf-8")
        missing += [
            f"{module}.{name}"
            for module in modules
            for name in _public_names(module)
            if f'id="{module}.{name}"' not in html
        ]
    assert not missing, f"public names without an API entry: {missing}"
    # The concept map links its classes to their API entries.
    concepts = (site / "concepts" / "index.html").read_text(encoding="utf-8")
    assert 'href="../api/layers/#keras_mm.layers.GatedFusion"' in concepts


def test_notebook_pages_show_stored_outputs(site):
    notebooks = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
    for notebook in notebooks:
        html = (site / "notebooks" / notebook.stem / "index.html").read_text()
        figure = re.search(r'<img [^>]*src="data:image/png;base64,', html)
        assert figure, f"{notebook.name}: its page shows no figure"


@contextlib.contextmanager
def serving(folder):
    """An HTTP server for `folder` on a free local port; yields its base URL."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(folder)
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_home_and_api_pages_render_in_chromium(site):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.isfile(CHROMIUM):
        message = "Debian's chromium is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    logs = REPO / "test-logs"
    logs.mkdir(exist_ok=True)
    with serving(site) as base, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            checked = {
                "": ("keras_mm", "keras_mm", "make demo"),
                "api/layers/": ("Layers", "Layers", "GatedFusion()"),
            }
            for url, (title, heading, code) in checked.items():
                page.goto(base + url)
                assert page.title().startswith(title), (url, page.title())
                assert page.locator("article h1").first.inner_text().startswith(heading)
                navigation = page.locator("nav.md-nav--primary").first
                assert navigation.is_visible(), url
                for entry in ("Concepts", "Guides", "Notebooks", "API reference"):
                    assert navigation.get_by_text(entry, exact=True).count(), entry
                block = page.locator("article pre code", has_text=code).first
                assert block.is_visible(), (url, code)
                assert block.bounding_box()["height"] > 10, url
                name = "home" if url == "" else "api-layers"
                page.screenshot(path=str(logs / f"docs-{name}.png"))
            assert errors == [], errors
        finally:
            browser.close()
