"""Every notebook of the book runs top to bottom, and is stored without outputs.

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


def test_python3_kernel_runs_this_interpreter():
    """nbclient starts the kernelspec named python3: it must be this venv's Python, not another."""
    from jupyter_client.manager import KernelManager

    command = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert Path(command[0]).resolve() == Path(sys.executable).resolve(), (
        f"the python3 kernel starts {command[0]}, not {sys.executable}; remove the kernelspec at "
        f"{KernelManager(kernel_name='python3').kernel_spec.resource_dir} or run "
        f"`{sys.executable} -m ipykernel install --sys-prefix`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: str(path.relative_to(ROOT / "chapters")))
def test_notebook_is_stored_without_outputs(path):
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: str(path.relative_to(ROOT / "chapters")))
def test_notebook_runs(path):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    require_data("omniglot/images_background.zip")  # the notebooks use real data
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()  # the kernel inherits this environment: METALEARN_DATA, METALEARN_CACHE
    except CellExecutionError as error:
        pytest.fail(f"{path.relative_to(ROOT)}: a cell raised\n{error}", pytrace=False)
