"""requirements files and conda environment.yml: every line shape pip accepts."""

from __future__ import annotations

from pathlib import Path

from mlsec.deps import manifest_kind, parse_manifests
from mlsec.deps.manifest import ParsedManifest


def parse(tmp_path: Path, *relpaths: str) -> dict[str, ParsedManifest]:
    files = [(tmp_path / r, r) for r in relpaths]
    return {m.path: m for m in parse_manifests(files, tmp_path)}


def deps(m: ParsedManifest) -> dict[str, tuple[str | None, int | None, bool]]:
    return {d.name: (d.version, d.line, d.pinned) for d in m.dependencies}


def test_manifest_names() -> None:
    assert manifest_kind("requirements.txt") == "requirements"
    assert manifest_kind("sub/requirements-dev.txt") == "requirements"
    assert manifest_kind("dev-requirements.in") == "requirements"
    assert manifest_kind("requirements/base.txt") == "requirements"
    assert manifest_kind("constraints.txt") == "requirements"
    assert manifest_kind("notes.txt") is None
    assert manifest_kind("myrequirementsfile.txt") is None
    assert manifest_kind("pyproject.toml") == "pyproject"
    assert manifest_kind("a/uv.lock") == "uv.lock"
    assert manifest_kind("pylock.toml") == "pylock"
    assert manifest_kind("pylock.dev.toml") == "pylock"
    assert manifest_kind("environment.yml") == "environment.yml"
    assert manifest_kind("environment-gpu.yaml") == "environment.yml"
    assert manifest_kind("Pipfile.lock") == "Pipfile.lock"
    assert manifest_kind("setup.cfg") == "setup.cfg"


def test_lines_options_markers_extras_hashes(tmp_path: Path, write) -> None:
    write(
        "requirements.txt",
        """
        # a comment
        --index-url https://pypi.org/simple
        torch==1.13.0  # trailing comment
        Scikit_Learn[alldeps]==0.23.2 ; python_version >= "3.6"
        mlflow==2.9.0 \\
            --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000
        numpy>=1.22,<2
        pandas
        onnx==1.*
        requests===2.31.0
        """,
    )
    m = parse(tmp_path, "requirements.txt")["requirements.txt"]
    assert m.problems == []
    assert deps(m) == {
        "torch": ("1.13.0", 3, True),
        "scikit-learn": ("0.23.2", 4, True),
        "mlflow": ("2.9.0", 5, True),
        "numpy": (None, 7, False),
        "pandas": (None, 8, False),
        "onnx": (None, 9, False),
        "requests": ("2.31.0", 10, True),
    }


def test_urls_editables_and_vcs_are_unauditable(tmp_path: Path, write) -> None:
    write(
        "requirements.txt",
        """
        -e git+https://github.com/org/proj.git@v1#egg=proj
        --editable ./local_pkg
        git+https://github.com/huggingface/transformers@main#egg=transformers
        https://files.example.org/torch-1.13.0-cp311-none-any.whl
        ./vendor/thing-1.0.tar.gz
        gradio @ https://example.org/gradio-3.0.tar.gz
        keras==2.6.0
        """,
    )
    m = parse(tmp_path, "requirements.txt")["requirements.txt"]
    got = [(u.name, u.line, u.reason) for u in m.unauditable]
    assert got == [
        ("proj", 1, "editable install"),
        (None, 2, "editable install"),
        ("transformers", 3, "VCS checkout"),
        ("torch", 4, "direct URL"),
        ("thing", 5, "local path"),
        ("gradio", 6, "direct URL"),
    ]
    assert deps(m) == {"keras": ("2.6.0", 7, True)}


def test_invalid_line_is_a_problem_and_parsing_goes_on(tmp_path: Path, write) -> None:
    write("requirements.txt", "torch==1.0\nthis is not ===valid\nnumpy==1.0\n")
    m = parse(tmp_path, "requirements.txt")["requirements.txt"]
    assert [line for line, _ in m.problems] == [2]
    assert set(deps(m)) == {"torch", "numpy"}


def test_includes_and_constraints(tmp_path: Path, write) -> None:
    write("requirements.txt", "-r base.in\n-c constraints/pins.txt\ntorch\n")
    write("base.in", "mlflow==2.9.0\n-r base.in\n")  # self-include: a loop, reported
    write("constraints/pins.txt", "torch==1.13.0\n")
    result = parse(tmp_path, "requirements.txt", "constraints/pins.txt")
    m = result["requirements.txt"]
    by_name = {d.name: d for d in m.dependencies}
    # the included file's entries keep their own file and line
    assert (by_name["mlflow"].source, by_name["mlflow"].line) == ("base.in", 1)
    # the constraint decides torch's version
    assert by_name["torch"].version == "1.13.0" and by_name["torch"].pinned
    # ... and its line is where the version is fixed
    assert (by_name["torch"].source, by_name["torch"].line) == ("constraints/pins.txt", 1)
    assert m.constraints == ["constraints/pins.txt"]
    assert any("loops" in msg for _, msg in m.problems)
    assert "base.in" in m.includes


def test_include_of_a_standalone_manifest_is_not_parsed_twice(tmp_path: Path, write) -> None:
    write("requirements.txt", "-r requirements-base.txt\n")
    write("requirements-base.txt", "torch==1.13.0\n")
    result = parse(tmp_path, "requirements.txt", "requirements-base.txt")
    assert result["requirements.txt"].dependencies == []
    assert deps(result["requirements-base.txt"]) == {"torch": ("1.13.0", 1, True)}


def test_include_outside_the_root_or_missing(tmp_path: Path, write) -> None:
    write("requirements.txt", "-r ../../etc/passwd\n-r missing.txt\n-r https://x/y.txt\n")
    m = parse(tmp_path, "requirements.txt")["requirements.txt"]
    assert [line for line, _ in m.problems] == [1, 2, 3]
    assert m.dependencies == []


def test_binary_garbage_does_not_crash(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes(b"\x00\xff\xfe garbage \x80\n==\n")
    m = parse(tmp_path, "requirements.txt")["requirements.txt"]
    assert m.dependencies == []
    assert m.problems


def test_environment_yml_pip_section(tmp_path: Path, write) -> None:
    write(
        "environment.yml",
        """
        name: demo
        dependencies:
          - python=3.10
          - pytorch=1.12
          - pip
          - pip:
            - mlflow==2.9.0
            - -e ./src
            - numpy>=1.22
        """,
    )
    m = parse(tmp_path, "environment.yml")["environment.yml"]
    assert deps(m) == {"mlflow": ("2.9.0", 7, True), "numpy": (None, 9, False)}
    assert [(u.line, u.reason) for u in m.unauditable] == [(8, "editable install")]


def test_environment_yml_broken(tmp_path: Path, write) -> None:
    write("environment.yml", "dependencies: [pip: {\n")
    m = parse(tmp_path, "environment.yml")["environment.yml"]
    assert m.problems and m.problems[0][1].startswith("invalid YAML")


def test_include_option_spellings(tmp_path: Path, write) -> None:
    write("requirements.txt", "--requirement=a.in\n-rb.in\n--constraint c.in\nz\n")
    write("a.in", "x==1\n")
    write("b.in", "y==2\n")
    write("c.in", "z==3\n")
    m = parse(tmp_path, "requirements.txt")["requirements.txt"]
    assert m.problems == []
    assert deps(m) == {"x": ("1", 1, True), "y": ("2", 1, True), "z": ("3", 1, True)}
    assert m.dependencies[-1].source == "c.in"
    assert m.includes == ["a.in", "b.in", "c.in"]
