"""Every manifest format read from real files (fixtures/locks, from public sdists and
repositories): the exact packages read, and the advisories found against their records."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlsec.config import build_options
from mlsec.deps import manifest_kind, parse_manifests
from mlsec.deps.manifest import ParsedManifest
from mlsec.findings import Severity
from mlsec.scan import scan

LOCKS = Path(__file__).resolve().parents[2] / "fixtures" / "locks"
RECORDS = LOCKS / "osv"
ANALYZERS = ("mlsec.analyzers.dependencies:DependencyAnalyzer",)


def _source(rel: str) -> Path:
    # setup.py files are stored as .txt: they are third-party code, not linted as ours
    return LOCKS / (f"{rel}.txt" if rel.endswith("setup.py") else rel)


def parse_fixture(tmp_path: Path, *relpaths: str) -> dict[str, ParsedManifest]:
    for rel in relpaths:
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_source(rel), target)
    files = [(tmp_path / rel, rel) for rel in relpaths]
    return {m.path: m for m in parse_manifests(files, tmp_path)}


def pins(m: ParsedManifest) -> dict[str, tuple[str | None, int | None, bool]]:
    return {d.name: (d.version, d.line, d.dev) for d in m.dependencies}


def audit(tmp_path: Path, *relpaths: str) -> dict[str, list]:
    for rel in relpaths:
        target = tmp_path / "repo" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_source(rel), target)
    options = build_options(tmp_path / "repo", use_git=False, offline=True, vuln_db=RECORDS)
    report = scan(options, analyzers=ANALYZERS)
    out: dict[str, list] = {}
    for f in report.findings:
        out.setdefault(f.rule_id, []).append(f)
    return out


def vulnerable(rules: dict[str, list]) -> dict[str, tuple[str, int | None, tuple[str, ...]]]:
    return {
        f.key: (f.path.split("/", 1)[-1], f.line, tuple(a["id"] for a in f.details["advisories"]))
        for rule in ("MLS200", "MLS201", "MLS202", "MLS203", "MLS204")
        for f in rules.get(rule, [])
    }


@pytest.mark.parametrize(
    ("relpath", "kind"),
    [
        ("pdm.lock", "pdm.lock"),
        ("Pipfile", "Pipfile"),
        ("Pipfile.lock", "Pipfile.lock"),
        ("setup.py", "setup.py"),
        ("requirements.lock", "requirements"),
        ("requirements-dev.lock", "requirements"),
        ("sub/requirements_test.lock", "requirements"),
        ("Requirements.TXT", "requirements"),
        ("REQUIREMENTS.LOCK", "requirements"),
        ("a/requirements/prod.txt", "requirements"),
        ("reqs/base.in", "requirements"),
        ("ENVIRONMENT.YML", "environment.yml"),
        ("environment-gpu.yaml", "environment.yml"),
        ("pylock.dev.toml", "pylock"),
        ("x/pyproject.toml", "pyproject"),
        ("requirements.txt.bak", None),
        ("notes.py", None),
        ("foo.toml", None),
        ("PYLOCK.toml", None),  # PEP 751 names are lower-case
    ],
)
def test_file_names(relpath: str, kind: str | None) -> None:
    assert manifest_kind(relpath) == kind


def test_pdm_lock(tmp_path: Path) -> None:
    m = parse_fixture(tmp_path, "pdm/pdm.lock")["pdm/pdm.lock"]
    assert (m.kind, m.lock, m.problems) == ("pdm.lock", True, [])
    assert pins(m) == {
        "click": ("7.1.2", 10, False),
        "flask": ("1.1.4", 21, False),
        "itsdangerous": ("1.1.0", 38, False),
        "jinja2": ("2.11.3", 51, False),
        "markupsafe": ("1.1.1", 65, False),
        "werkzeug": ("1.0.1", 136, False),
    }
    flask = next(d for d in m.dependencies if d.name == "flask")
    assert flask.depends_on == ("click", "itsdangerous", "jinja2", "werkzeug")
    found = vulnerable(audit(tmp_path, "pdm/pdm.lock"))
    assert found == {
        "flask==1.1.4": ("pdm.lock", 21, ("PYSEC-2023-62",)),
        "werkzeug==1.0.1": (
            "pdm.lock",
            136,
            ("PYSEC-2022-203", "PYSEC-2023-221", "PYSEC-2023-57", "PYSEC-2023-58"),
        ),
    }


def test_pdm_lock_legacy_format_lists_a_package_with_extras_once(tmp_path: Path) -> None:
    m = parse_fixture(tmp_path, "pdm-legacy/pdm.lock")["pdm-legacy/pdm.lock"]
    assert pins(m) == {
        "certifi": ("2021.10.8", 1, False),
        "charset-normalizer": ("2.0.7", 6, False),
        "idna": ("3.3", 12, False),
        "requests": ("2.26.0", 18, False),
        "urllib3": ("1.26.7", 44, False),
    }
    assert len(m.dependencies) == 5  # requests[security] is the same release
    found = vulnerable(audit(tmp_path, "pdm-legacy/pdm.lock"))
    assert found == {
        "certifi==2021.10.8": ("pdm.lock", 1, ("PYSEC-2022-42986", "PYSEC-2023-135")),
        "idna==3.3": ("pdm.lock", 12, ("PYSEC-2024-60",)),
        "requests==2.26.0": ("pdm.lock", 18, ("PYSEC-2023-74",)),
        "urllib3==1.26.7": ("pdm.lock", 44, ("PYSEC-2023-192", "PYSEC-2023-212")),
    }


def test_pdm_lock_groups_mark_development_packages(tmp_path: Path) -> None:
    (tmp_path / "pdm.lock").write_text(
        '[metadata]\ngroups = ["default", "test"]\nlock_version = "4.4"\n\n'
        '[[package]]\nname = "pytest"\nversion = "7.0.0"\ngroups = ["test"]\n\n'
        '[[package]]\nname = "idna"\nversion = "3.3"\ngroups = ["default", "test"]\n\n'
        '[[package]]\nname = "mylib"\nversion = "0.1"\npath = "./mylib"\neditable = true\n'
        'groups = ["default"]\n',
        encoding="utf-8",
    )
    (m,) = parse_manifests([(tmp_path / "pdm.lock", "pdm.lock")], tmp_path)
    assert pins(m) == {"pytest": ("7.0.0", 5, True), "idna": ("3.3", 10, False)}
    assert [(u.name, u.reason, u.line) for u in m.unauditable] == [
        ("mylib", "editable install", 15)
    ]


def test_pipfile_and_its_lock(tmp_path: Path) -> None:
    result = parse_fixture(tmp_path, "pipenv/Pipfile", "pipenv/Pipfile.lock")
    pipfile, lock = result["pipenv/Pipfile"], result["pipenv/Pipfile.lock"]
    assert pins(pipfile) == {"requests": (None, 7, False), "pytest": (None, 11, True)}
    assert pins(lock) == {
        "certifi": ("2023.7.22", 17, False),
        "charset-normalizer": ("3.3.0", 25, False),
        "idna": ("3.4", 121, False),
        "requests": ("2.31.0", 129, False),
        "urllib3": ("2.0.7", 138, False),
        "py": ("1.11.0", 149, True),
        "pytest": ("3.2.2", 157, True),
        "setuptools": ("68.2.2", 165, True),
    }
    rules = audit(tmp_path, "pipenv/Pipfile", "pipenv/Pipfile.lock")
    assert vulnerable(rules) == {
        "idna==3.4": ("Pipfile.lock", 121, ("PYSEC-2024-60",)),
        "py==1.11.0": ("Pipfile.lock", 149, ("PYSEC-2022-42969",)),
    }
    assert "MLS210" not in rules  # the Pipfile's ranges are fixed by Pipfile.lock beside it


def test_pipfile_pins_are_audited_and_ranges_reported(tmp_path: Path) -> None:
    (tmp_path / "Pipfile").write_text(
        '[packages]\nrequests = "==2.26.0"\nidna = "3.3"\nurllib3 = {version = ">=1.26"}\n'
        'flask = {git = "https://github.com/pallets/flask.git", ref = "main"}\n'
        '[dev-packages]\npytest = "*"\n[docs]\nsphinx = ">=7"\n',
        encoding="utf-8",
    )
    (m,) = parse_manifests([(tmp_path / "Pipfile", "Pipfile")], tmp_path)
    assert pins(m) == {
        "requests": ("2.26.0", 2, False),
        "idna": ("3.3", 3, False),  # pipenv reads a bare version as ==
        "urllib3": (None, 4, False),
        "pytest": (None, 7, True),
        "sphinx": (None, 9, True),  # a custom category is not the default install
    }
    assert [(u.name, u.reason, u.line) for u in m.unauditable] == [("flask", "VCS checkout", 5)]


def test_pipfile_from_pdm_with_a_marker_table(tmp_path: Path) -> None:
    m = parse_fixture(tmp_path, "pdm-pipfile/Pipfile")["pdm-pipfile/Pipfile"]
    assert pins(m) == {"requests": (None, 7, False), "pywinusb": (None, 8, False)}
    assert m.problems == []


def test_rye_requirements_lock(tmp_path: Path) -> None:
    m = parse_fixture(tmp_path, "rye/requirements-dev.lock")["rye/requirements-dev.lock"]
    assert len(m.dependencies) == 34 and all(d.pinned for d in m.dependencies)
    assert pins(m)["jinja2"] == ("3.1.2", 36, False)
    assert pins(m)["watchdog"] == ("3.0.0", 92, False)
    assert [(u.reason, u.line) for u in m.unauditable] == [
        ("editable install", 10),
        ("editable install", 11),
    ]
    found = vulnerable(audit(tmp_path, "rye/requirements-dev.lock"))
    assert found == {
        "certifi==2023.5.7": ("requirements-dev.lock", 14, ("PYSEC-2023-135",)),
        "idna==3.4": ("requirements-dev.lock", 32, ("PYSEC-2024-60",)),
        "urllib3==2.0.2": ("requirements-dev.lock", 90, ("PYSEC-2023-192", "PYSEC-2023-212")),
    }


def test_setup_py_literal_lists_through_names(tmp_path: Path) -> None:
    m = parse_fixture(tmp_path, "setuppy-requests/setup.py")["setuppy-requests/setup.py"]
    table = {(d.name, d.line): (d.specifier, d.dev) for d in m.dependencies}
    assert table == {
        ("chardet", 52): ("<3.1.0,>=3.0.2", False),
        ("idna", 53): ("<2.8,>=2.5", False),
        ("urllib3", 54): ("<1.24,>=1.21.1", False),
        ("certifi", 55): (">=2017.4.17", False),
        ("pytest-httpbin", 58): ("==0.0.7", True),
        ("pytest-cov", 58): ("", True),
        ("pytest-mock", 58): ("", True),
        ("pytest-xdist", 58): ("", True),
        ("pysocks", 58): ("!=1.5.7,>=1.5.6", True),
        ("pytest", 58): (">=2.8.0", True),
        ("cryptography", 104): (">=1.3.4", False),
        ("idna", 104): (">=2.0.0", False),
        ("pysocks", 105): ("!=1.5.7,>=1.5.6", False),
        ("win-inet-pton", 106): ("", False),
    }
    # PYOPENSSL_VERSION is assigned in both branches of an if: not known without running it
    assert m.dynamic == [
        (104, "extras_require: 'PYOPENSSL_VERSION' is not a literal assigned once")
    ]


def test_setup_py_computed_dependencies_are_reported_not_audited(tmp_path: Path) -> None:
    rules = audit(tmp_path, "setuppy-diffusers/setup.py")
    dynamic = sorted((f.line, f.severity) for f in rules["MLS207"])
    assert dynamic == [(266, Severity.LOW), (267, Severity.LOW)]
    assert "never does" in rules["MLS207"][0].message
    assert set(rules) == {"MLS207"}


def test_setup_py_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    (tmp_path / "setup.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\n"
        "from setuptools import setup\n"
        "setup(name='x', install_requires=['idna==3.3'], **{'extras_require': {}})\n",
        encoding="utf-8",
    )
    (m,) = parse_manifests([(tmp_path / "setup.py", "setup.py")], tmp_path)
    assert not marker.exists()
    assert pins(m) == {"idna": ("3.3", 3, False)}


KWARGS = "setup() takes its arguments from **kwargs built at run time"
CALL = "install_requires: computed at run time (Call)"
REQS = "install_requires: 'reqs' is not a literal assigned once"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("setup(**config)\n", [(1, KWARGS)]),
        ("setup(install_requires=open('r.txt').read().splitlines())\n", [(1, CALL)]),
        ("reqs = ['a']\nreqs.append('b')\nsetup(install_requires=reqs)\n", [(3, REQS)]),
        ("import setuptools\nsetuptools.setup(install_requires='a==1\\nb>=2')\n", []),
        ("def f(:\n", None),
    ],
)
def test_setup_py_shapes(tmp_path: Path, source: str, expected: list | None) -> None:
    (tmp_path / "setup.py").write_text(source, encoding="utf-8")
    (m,) = parse_manifests([(tmp_path / "setup.py", "setup.py")], tmp_path)
    if expected is None:
        assert m.problems and m.problems[0][1].startswith("invalid Python")
        return
    assert m.dynamic == expected


def test_setup_cfg(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text(
        "[options]\ninstall_requires =\n    idna==3.3\n    requests>=2\n"
        "[options.extras_require]\ntest =\n    pytest==7.0\n",
        encoding="utf-8",
    )
    (m,) = parse_manifests([(tmp_path / "setup.cfg", "setup.cfg")], tmp_path)
    assert pins(m) == {
        "idna": ("3.3", 3, False),
        "requests": (None, 4, False),
        "pytest": ("7.0", 7, False),
    }


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
    ],
)
def test_requirements_encodings_as_pip_reads_them(
    tmp_path: Path, encoding: str, bom: bytes
) -> None:
    text = "idna==3.3\r\nrequests==2.26.0\r\n"  # what `pip freeze >` writes in PowerShell
    (tmp_path / "requirements.txt").write_bytes(bom + text.encode(encoding))
    (m,) = parse_manifests([(tmp_path / "requirements.txt", "requirements.txt")], tmp_path)
    assert (m.problems, pins(m)) == (
        [],
        {"idna": ("3.3", 1, False), "requests": ("2.26.0", 2, False)},
    )


def test_utf16_without_a_bom_is_a_problem_not_garbage(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes("idna==3.3\n".encode("utf-16-le"))
    (m,) = parse_manifests([(tmp_path / "requirements.txt", "requirements.txt")], tmp_path)
    assert m.dependencies == []
    assert [msg for _, msg in m.problems] == [
        "looks like UTF-16 without a byte-order mark; not read"
    ]


def test_hatch_envs_pdm_and_uv_dev_dependencies_are_dev(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\ndependencies = ["idna==3.3"]\n\n'
        "[tool.hatch.envs.default]\n"
        'dependencies = ["pytest==7.0.0"]\n\n'
        "[tool.hatch.envs.docs]\n"
        'extra-dependencies = ["mkdocs>=1.4"]\n\n'
        "[tool.pdm.dev-dependencies]\n"
        'lint = ["ruff==0.5.0", "-e file:///${PROJECT_ROOT}/tools/plugin"]\n\n'
        "[tool.uv]\n"
        'dev-dependencies = ["coverage==7.0"]\n',
        encoding="utf-8",
    )
    (m,) = parse_manifests([(tmp_path / "pyproject.toml", "pyproject.toml")], tmp_path)
    assert m.problems == []
    assert pins(m) == {
        "idna": ("3.3", 3, False),
        "pytest": ("7.0.0", 6, True),
        "mkdocs": (None, 9, True),
        "ruff": ("0.5.0", 12, True),
        "coverage": ("7.0", 15, True),
    }
    assert [(u.reason, u.line, u.dev) for u in m.unauditable] == [("editable install", 12, True)]
    assert m.first_party == {"app"}


def test_the_projects_own_code_is_not_reported_unauditable(tmp_path: Path) -> None:
    rules = audit(tmp_path, "rye/requirements-dev.lock")  # -e file:. and -e file:rye-devtools
    assert "MLS211" not in rules
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "requirements.txt").write_text(
        "-e .\n./packages/core\n-e ../outside\n-e git+https://example.org/x.git#egg=x\n",
        encoding="utf-8",
    )
    options = build_options(tmp_path / "other", use_git=False, offline=True, vuln_db=RECORDS)
    report = scan(options, analyzers=ANALYZERS)
    assert sorted(f.line for f in report.findings if f.rule_id == "MLS211") == [3, 4]
