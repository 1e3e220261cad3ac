"""The layers of the code: ``common/`` is what every chapter imports, so it never imports a chapter.

A chapter plugs its algorithms into ``common/`` (data, episodes, learners, training loop, results);
were ``common/`` to import a chapter, a new chapter could not be added without editing the shared
code, and import cycles would follow. Programs that use chapters (benchmarks) live in ``tools/``.
The check reads the source (``ast``), so it also sees imports inside functions.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, relative imports resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def chapter_imports(folder: Path) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: {module}"
            for path in sorted(folder.rglob("*.py"))
            for line, module in imported_modules(path)
            if module == "chapters" or module.startswith("chapters.")]


def test_common_never_imports_a_chapter():
    found = chapter_imports(ROOT / "common")
    assert not found, ("common/ must not import chapters/ (move the program to tools/, or the shared "
                       "code into common/):\n" + "\n".join(found))


def test_the_check_sees_every_kind_of_import(tmp_path, monkeypatch):
    """A plain, a from-, a function-local and an import_module import of a chapter are all found."""
    package = tmp_path / "common"
    package.mkdir()
    (package / "bad.py").write_text("import chapters.metric\nfrom chapters import optimization\n"
                                    "def f():\n    from chapters.metric.train import build_learner\n"
                                    "    importlib.import_module('chapters.optimization.maml')\n"
                                    "import common.episodes\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert len(chapter_imports(package)) == 4


def test_the_results_format_stands_without_the_command_line():
    """``common.results`` is read by tables, notebooks and tests: it needs no script machinery."""
    modules = {module for _, module in imported_modules(ROOT / "common" / "results.py")}
    assert "common.cli" not in modules
