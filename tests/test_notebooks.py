"""The analyst notebooks (``notebooks/``) run top to bottom against the demo city.

Each notebook is executed by nbclient in a fresh kernel of this virtualenv's Python, with
``SPATIAL_URL`` pointing at the session's server (the demo loaded), its working directory
``notebooks/``. A cell that raises fails the test with the cell's traceback
(``CellExecutionError``); a notebook must also have drawn its figures (PNG from the inline
matplotlib backend) and its folium maps (HTML). The executed copies are written to
``var/notebooks/`` for a person to look at; the committed notebooks stay without outputs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import nbclient
import nbformat
import pytest
from support import TESTS, LiveServer

from spatial import accounts
from spatial.db import engine

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "var" / "notebooks"
KERNEL = "spatial-notebooks"
CELL_TIMEOUT = 300  # seconds; the whole set runs in well under two minutes
NAMES = tuple(sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")))
"""Every notebook of the folder (00 quick start, then one per subsystem or group of them)."""


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data directory holding one kernelspec: this interpreter's ipykernel.

    A ``python3`` kernelspec found elsewhere (the user's, the system's) may run another
    Python without the project installed; this one cannot.
    """
    data = tmp_path_factory.mktemp("jupyter")
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "spatial (tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return data


@pytest.fixture
def jupyter_env(kernel_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Jupyter finding the test kernelspec first, on the platform directories it moves to
    (without ``JUPYTER_PLATFORM_DIRS`` jupyter_core warns, and warnings are errors here)."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    yield


def outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Every output of every code cell."""
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def is_map(output: nbformat.NotebookNode) -> bool:
    """A folium map's rich output (an iframe of the Leaflet page)."""
    html = output.get("data", {}).get("text/html", "")
    return "leaflet" in html.lower() and "<iframe" in html


@pytest.fixture(scope="module")
def dispatcher_key(database_url: str) -> str:
    """An API key of an editor of the emergency department: 05_emergency runs the command
    chain (the incidents are private to that department)."""
    with engine(database_url) as eng, eng.begin() as conn:
        accounts.add_user(conn, TESTS, "nb_dispatcher", roles=("editor",),
                          department="emergency", service=True)  # fmt: skip
        return accounts.create_key(conn, TESTS, "nb_dispatcher", name="notebooks")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.usefixtures("jupyter_env")
def test_notebook_runs(name: str, demo_api: LiveServer, dispatcher_key: str) -> None:
    """The notebook runs without an error and shows its plots and its map."""
    path = NOTEBOOKS / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    env = {
        **os.environ,
        "SPATIAL_URL": demo_api.url,
        # Headless plots as PNG outputs, whatever the caller's MPLBACKEND says.
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    env.pop("SPATIAL_TOKEN", None)  # the demo city is open data: no key needed
    if name == "05_emergency":  # but its incidents are the emergency department's
        env["SPATIAL_TOKEN"] = dispatcher_key
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    try:
        client.execute(env=env)
    finally:
        EXECUTED.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, EXECUTED / path.name)

    shown = outputs(notebook)
    errors = [o for o in shown if o.output_type == "error"]
    assert not errors, errors
    images = [o for o in shown if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no figure"
    assert any(is_map(o) for o in shown), f"{name} showed no map"
    if name == "05_emergency":  # the command chain ran: an incident was reported
        assert "INC-" in json.dumps([o.get("data", o.get("text")) for o in shown])


@pytest.mark.parametrize("name", NAMES)
def test_notebook_stored_clean(name: str) -> None:
    """Notebooks are committed without outputs or execution counts (small diffs, no
    stale results), in the current notebook format."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert "Client()" in code[0].source, "the first code cell connects (SPATIAL_URL/TOKEN)"
