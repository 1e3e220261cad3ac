"""Run the book's notebooks and store them with their outputs: ``make notebooks``.

    python -m common.notebooks                          # every chapters/**/*.ipynb
    python -m common.notebooks chapters/metric/metric.ipynb

Each notebook runs top to bottom as it is committed (``FAST = True``: minutes, not hours), in
its own folder on the ``python3`` kernel, as Jupyter would run it; then its outputs are stored in
the file, so that GitHub and Jupyter show the figures and numbers to a reader who runs nothing.
What would tie a stored notebook to this machine is left out: stderr (framework start-up
chatter, warnings with file paths), per-cell timestamps, and the name of the temporary folder a
fast run writes into (printed as ``<temporary folder>``); any other output naming a path of this
machine is refused, as is a notebook whose outputs grow past ``MAX_BYTES``.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

from common.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 1_500_000  # a notebook with its figures still opens quickly on GitHub
# Paths that belong to one machine: home folders, temporary folders, this checkout, the venv.
MACHINE_PATH = re.compile(r"(/home/|/Users/|/tmp/|/var/folders/|/work/|site-packages|[A-Z]:\\\\)")


def notebooks(names: list[str]) -> list[Path]:
    if not names:
        found = sorted((ROOT / "chapters").rglob("*.ipynb"))
        return [path for path in found if ".ipynb_checkpoints" not in path.parts]
    paths = [Path(name).resolve() for name in names]
    missing = [str(path) for path in paths if path.suffix != ".ipynb" or not path.exists()]
    if missing:
        raise ConfigError(f"not a notebook: {', '.join(missing)}")
    return paths


def machine_paths(notebook) -> list[str]:
    """Outputs of ``notebook`` that name a path of this machine, as 'cell i: ...' lines."""
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            text = output.get("text", "") + "".join(str(v) for k, v in output.get("data", {}).items()
                                                    if k.startswith("text/"))
            text += "".join(output.get("traceback", []))
            match = MACHINE_PATH.search(text)
            if match:
                start = max(0, match.start() - 40)
                found.append(f"cell {index}: ...{text[start:match.end() + 40]}...")
    return found


def without_temporary_folders(text: str) -> str:
    """``text`` with every ``<temp dir>/<folder>`` replaced by ``<temporary folder>``."""
    return re.sub(re.escape(tempfile.gettempdir().rstrip("/")) + r"/[^/\s'\"]+", "<temporary folder>", text)


def absolute_data_paths() -> dict[str, str]:
    """``METALEARN_DATA`` and ``METALEARN_CACHE`` (those set) as absolute paths, for the environment a
    notebook's kernel inherits: the kernel runs in the notebook's own folder, where a relative path
    given on the command line (``METALEARN_DATA=../shared/data``) would point elsewhere."""
    return {name: str(Path(os.environ[name]).expanduser().resolve())
            for name in ("METALEARN_DATA", "METALEARN_CACHE") if os.environ.get(name)}


def run(path: Path, timeout: int = 900) -> int:
    """Execute ``path`` and store it with its outputs; returns the stored size in bytes."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
            for output in cell.outputs:
                if "text" in output:
                    output.text = without_temporary_folders(output.text)
                if "text/plain" in output.get("data", {}):
                    output.data["text/plain"] = without_temporary_folders(output.data["text/plain"])
            cell.metadata.pop("execution", None)
    problems = machine_paths(notebook)
    if problems:
        raise ConfigError(f"{path.name}: outputs name paths of this machine; print relative paths instead:\n"
                          + "\n".join(problems[:5]))
    text = nbformat.writes(notebook) + "\n"
    if len(text.encode()) > MAX_BYTES:
        raise ConfigError(f"{path.name} would be {len(text.encode()) / 1e6:.1f} MB with its outputs (at most "
                          f"{MAX_BYTES / 1e6:.1f}): draw smaller figures or print less")
    path.write_text(text)
    return len(text.encode())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m common.notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every chapter's)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.update(absolute_data_paths())
    for path in notebooks(args.notebooks):
        print(f"running {path.relative_to(ROOT)} ...", flush=True)
        size = run(path)
        print(f"stored {path.relative_to(ROOT)} with its outputs ({size / 1000:.0f} KB)", flush=True)


if __name__ == "__main__":
    from common.cli import run as run_cli

    run_cli(main)
