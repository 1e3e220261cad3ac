"""Every notebook of the book runs top to bottom, and is stored with the outputs of a fast-mode run.

Each ``chapters/**/*.ipynb`` is executed with nbclient on the ``python3`` kernel, in the notebook's
own folder (as Jupyter would run it), and a cell that raises fails the test with that cell's error.
"""

import sys
from pathlib import Path

import pytest

from tests.conftest import require_data

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").rglob("*.ipynb"))
NOTEBOOKS = [path for path in NOTEBOOKS if ".ipynb_checkpoints" not in path.parts]
TIMEOUT = 600  # seconds per cell
# Seconds for a new kernel to answer (nbclient's default is 60): a kernel on a loaded core can take
# longer than that just to start Python, and a slow start is no failure of the notebook.
STARTUP_TIMEOUT = 300


def test_python3_kernel_runs_this_interpreter():
    """nbclient starts the kernelspec named python3: it must be this venv's Python, not another."""
    from jupyter_client.manager import KernelManager

    command = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert Path(command[0]).resolve() == Path(sys.executable).resolve(), (
        f"the python3 kernel starts {command[0]}, not {sys.executable}; remove the kernelspec at "
        f"{KernelManager(kernel_name='python3').kernel_spec.resource_dir} or run "
        f"`{sys.executable} -m ipykernel install --sys-prefix`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: str(path.relative_to(ROOT / "chapters")))
def test_notebook_is_stored_with_its_outputs(path):
    """A reader on GitHub sees the figures and numbers of a fast-mode run: `make notebooks` stores
    every cell's outputs, run top to bottom, with no error, no path of the machine that ran it,
    and at a size that opens quickly."""
    import nbformat

    from common.notebooks import MAX_BYTES, machine_paths

    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: cells not run top to bottom in one session (execution counts {counts}); "
        f"run `make notebooks`")
    images = sum("image/png" in output.get("data", {}) for cell in code for output in cell.outputs)
    assert images, f"{path.name} is stored without its figures; run `make notebooks`"
    errors = [i for i, cell in enumerate(notebook.cells) for output in cell.get("outputs", [])
              if output.output_type == "error"]
    assert not errors, f"{path.name}: cells {errors} are stored with an error"
    assert not machine_paths(notebook), f"{path.name}: outputs name local paths: {machine_paths(notebook)[:3]}"
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: str(path.relative_to(ROOT / "chapters")))
def test_notebook_runs(path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from common.notebooks import absolute_data_paths

    require_data("omniglot/images_background.zip")  # the notebooks use real data
    for name, value in absolute_data_paths().items():  # the kernel runs in the notebook's folder
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=TIMEOUT, startup_timeout=STARTUP_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()  # the kernel inherits this environment: METALEARN_DATA, METALEARN_CACHE
    except CellExecutionError as error:
        pytest.fail(f"{path.relative_to(ROOT)}: a cell raised\n{error}", pytrace=False)
