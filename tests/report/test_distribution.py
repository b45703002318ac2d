"""The distribution: named mlsec-scanner (PyPI's "mlsec" is another project), the `mlsec`
command and package; the wheel carries the report schema; the sdist carries no deliberately
malicious sample and no private key (checked by content: mlsec scans the unpacked sdist)."""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DISTRIBUTION = "mlsec-scanner"
PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def test_distribution_name_is_ours_everywhere() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"]["mlsec"] == "mlsec.cli:main"
    readme = (REPO / "README.md").read_text()
    assert "pip install mlsec " not in readme and "pip install mlsec\n" not in readme
    assert "pip install mlsec`" not in readme


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    builders = pytest.importorskip("hatchling.builders.sdist")
    out = tmp_path_factory.mktemp("sdist")
    [built] = builders.SdistBuilder(str(REPO)).build(directory=str(out), versions=["standard"])
    return Path(built)


def test_sdist_has_no_private_key_and_no_malicious_sample(sdist: Path, tmp_path: Path) -> None:
    from mlsec.config import build_options
    from mlsec.scan import scan

    assert sdist.name.startswith("mlsec_scanner-")
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        for member in members:
            handle = archive.extractfile(member)
            assert handle is not None
            assert not PEM_PRIVATE_KEY.search(handle.read()), member.name
        archive.extractall(tmp_path, filter="data")
    [root] = tmp_path.iterdir()
    assert (root / "tests").is_dir() and (root / "fixtures" / "generate_models.py").is_file()
    assert (root / "schemas" / "mlsec-report.schema.json").is_file()
    report = scan(build_options(root, use_git=False, select=["MLS1"]))
    dangerous = [
        (f.rule_id, f.path)
        for f in report.findings
        if f.rule_id.startswith("MLS1") and f.severity.rank >= 3  # high or critical
    ]
    assert dangerous == []


def test_wheel_ships_the_report_schema(tmp_path: Path) -> None:
    builders = pytest.importorskip("hatchling.builders.wheel")
    [wheel] = builders.WheelBuilder(str(REPO)).build(directory=str(tmp_path), versions=["standard"])
    assert Path(wheel).name.startswith("mlsec_scanner-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mlsec/_schemas/mlsec-report.schema.json" in names
