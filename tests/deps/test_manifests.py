"""pyproject.toml (PEP 621, PEP 735, Poetry), setup.cfg and the lock files."""

from __future__ import annotations

from pathlib import Path

from mlsec.deps import parse_manifests
from mlsec.deps.manifest import ParsedManifest


def parse_one(tmp_path: Path, relpath: str) -> ParsedManifest:
    (m,) = parse_manifests([(tmp_path / relpath, relpath)], tmp_path)
    return m


def table(m: ParsedManifest) -> dict[str, tuple[str | None, int | None, bool, bool]]:
    return {d.name: (d.version, d.line, d.pinned, d.dev) for d in m.dependencies}


def test_pyproject_pep621_extras_groups(tmp_path: Path, write) -> None:
    write(
        "pyproject.toml",
        """
        [project]
        name = "demo"
        dependencies = [
            "torch==1.13.0",
            "numpy>=1.22",
        ]

        [project.optional-dependencies]
        serve = ["mlflow==2.9.0"]

        [dependency-groups]
        test = ["pytest>=8", {include-group = "lint"}]
        lint = ["ruff==0.5.0"]
        """,
    )
    m = parse_one(tmp_path, "pyproject.toml")
    assert m.problems == []
    assert table(m) == {
        "torch": ("1.13.0", 4, True, False),
        "numpy": (None, 5, False, False),
        "mlflow": ("2.9.0", 9, True, False),
        "pytest": (None, 12, False, True),
        "ruff": ("0.5.0", 13, True, True),
    }


def test_pyproject_poetry_tables(tmp_path: Path, write) -> None:
    write(
        "pyproject.toml",
        """
        [tool.poetry.dependencies]
        python = "^3.10"
        torch = "1.13.0"
        numpy = "^1.22"
        mlflow = { version = "==2.9.0", extras = ["extras"] }
        transformers = { git = "https://github.com/huggingface/transformers.git" }

        [tool.poetry.group.dev.dependencies]
        pytest = "8.0.0"
        """,
    )
    m = parse_one(tmp_path, "pyproject.toml")
    assert table(m) == {
        "torch": ("1.13.0", 3, True, False),
        "numpy": (None, 4, False, False),
        "mlflow": ("2.9.0", 5, True, False),
        "pytest": ("8.0.0", 9, True, True),
    }
    assert [(u.name, u.line, u.reason) for u in m.unauditable] == [
        ("transformers", 6, "VCS checkout")
    ]


def test_pyproject_invalid(tmp_path: Path, write) -> None:
    write("pyproject.toml", "[project\ndependencies = [\n")
    m = parse_one(tmp_path, "pyproject.toml")
    assert m.dependencies == [] and m.problems[0][1].startswith("invalid TOML")
    write("pyproject.toml", "[project]\ndependencies = 'torch'\n")
    m = parse_one(tmp_path, "pyproject.toml")
    assert m.problems == [(1, "project.dependencies must be a list of requirement strings")]


def test_setup_cfg(tmp_path: Path, write) -> None:
    write(
        "setup.cfg",
        """
        [metadata]
        name = demo

        [options]
        install_requires =
            torch==1.13.0
            numpy>=1.22  # why not
        [options.extras_require]
        serve =
            mlflow==2.9.0
        """,
    )
    m = parse_one(tmp_path, "setup.cfg")
    assert table(m) == {
        "torch": ("1.13.0", 6, True, False),
        "numpy": (None, 7, False, False),
        "mlflow": ("2.9.0", 10, True, False),
    }


UV_LOCK = """
version = 1
requires-python = ">=3.10"

[[package]]
name = "demo"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "mlflow" },
]

[package.dev-dependencies]
dev = [
    { name = "pytest" },
]

[[package]]
name = "mlflow"
version = "2.9.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "Flask" },
]

[[package]]
name = "flask"
version = "2.0.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pytest"
version = "8.0.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "private-lib"
version = "0.3.0"
source = { git = "https://github.com/org/private-lib?rev=main#abc" }
"""


def test_uv_lock(tmp_path: Path, write) -> None:
    write("uv.lock", UV_LOCK)
    m = parse_one(tmp_path, "uv.lock")
    assert m.lock and m.problems == []
    by = {d.name: d for d in m.dependencies}
    assert set(by) == {"mlflow", "flask", "pytest"}  # the project itself is not a dependency
    assert (by["mlflow"].version, by["mlflow"].line, by["mlflow"].direct) == ("2.9.0", 17, True)
    assert by["mlflow"].depends_on == ("flask",)
    assert not by["flask"].direct and not by["flask"].dev
    assert by["pytest"].dev and by["pytest"].direct
    assert [(u.name, u.line, u.reason) for u in m.unauditable] == [
        ("private-lib", 35, "VCS checkout")
    ]


def test_poetry_lock(tmp_path: Path, write) -> None:
    write(
        "poetry.lock",
        """
        [[package]]
        name = "torch"
        version = "1.13.0"
        optional = false
        groups = ["main"]

        [package.dependencies]
        numpy = "*"
        typing-extensions = ">=4"

        [[package]]
        name = "pytest"
        version = "8.0.0"
        category = "dev"

        [[package]]
        name = "mylib"
        version = "0.1.0"

        [package.source]
        type = "git"
        url = "https://github.com/org/mylib.git"

        [[package]]
        name = "broken"
        """,
    )
    m = parse_one(tmp_path, "poetry.lock")
    by = {d.name: d for d in m.dependencies}
    assert (by["torch"].line, by["torch"].dev) == (1, False)
    assert by["torch"].depends_on == ("numpy", "typing-extensions")
    assert (by["pytest"].line, by["pytest"].dev) == (11, True)
    assert [(u.name, u.line) for u in m.unauditable] == [("mylib", 16)]
    assert m.problems == [(24, "locked package 'broken' has no version")]


def test_pipfile_lock(tmp_path: Path, write) -> None:
    write(
        "Pipfile.lock",
        """
        {
            "_meta": {"hash": {"sha256": "x"}},
            "default": {
                "torch": {"hashes": [], "version": "==1.13.0"},
                "mylib": {"git": "https://github.com/org/mylib.git", "ref": "abc"}
            },
            "develop": {
                "pytest": {"version": "==8.0.0", "markers": "python_version >= '3.8'"}
            }
        }
        """,
    )
    m = parse_one(tmp_path, "Pipfile.lock")
    assert table(m) == {"torch": ("1.13.0", 4, True, False), "pytest": ("8.0.0", 8, True, True)}
    assert [(u.name, u.line, u.reason) for u in m.unauditable] == [("mylib", 5, "VCS checkout")]
    write("Pipfile.lock", "{ not json")
    m = parse_one(tmp_path, "Pipfile.lock")
    assert m.problems and m.problems[0][1].startswith("invalid JSON")


def test_pylock_toml(tmp_path: Path, write) -> None:
    write(
        "pylock.toml",
        """
        lock-version = "1.0"
        created-by = "test"

        [[packages]]
        name = "torch"
        version = "1.13.0"
        index = "https://pypi.org/simple"
        dependencies = [{ name = "numpy" }]

        [[packages]]
        name = "local-thing"
        [packages.directory]
        path = "./thing"
        """,
    )
    m = parse_one(tmp_path, "pylock.toml")
    assert table(m) == {"torch": ("1.13.0", 4, True, False)}
    assert m.dependencies[0].depends_on == ("numpy",)
    assert [(u.name, u.line, u.reason) for u in m.unauditable] == [
        ("local-thing", 10, "local path")
    ]
