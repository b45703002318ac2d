"""OSV matching semantics against real records (fixtures/osv-mini) and edge cases."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_version
from packaging.version import Version

from mlsec.deps.osv import (
    AffectedRange,
    OsvDatabase,
    OsvRecord,
    compact_records,
    equality_key,
    merge_advisories,
    smallest_fix,
)
from mlsec.errors import MlsecError
from mlsec.findings import Severity

from .conftest import OSV_MINI


@pytest.fixture
def mini(isolated_cache: Path) -> OsvDatabase:
    return OsvDatabase(OSV_MINI, cache_dir=isolated_cache)


def ids(db: OsvDatabase, name: str, version: str) -> list[str]:
    return [a.id for a in db.advisories(name, version)]


def test_multi_interval_ranges(mini: OsvDatabase) -> None:
    # PYSEC-2021-189: [0, 2.2.0rc0) [2.2.0, 2.3.0rc0) [2.3.0, 2.3.4) [2.4.0, 2.4.3)
    # PYSEC-2020-127: [0, 1.15.4) [2.0.0, 2.0.3) [2.1.0, 2.1.2) [2.2.0, 2.2.1) [2.3.0, 2.3.1)
    assert "PYSEC-2021-189" in ids(mini, "tensorflow", "2.3.3")
    assert "PYSEC-2021-189" not in ids(mini, "tensorflow", "2.3.4")
    assert "PYSEC-2021-189" in ids(mini, "tensorflow", "2.4.2")
    assert "PYSEC-2021-189" not in ids(mini, "tensorflow", "2.4.3")
    assert "PYSEC-2020-127" in ids(mini, "tensorflow", "2.3.0")
    assert "PYSEC-2020-127" not in ids(mini, "tensorflow", "2.3.1")
    assert "PYSEC-2020-127" not in ids(mini, "tensorflow", "1.15.4")
    assert "PYSEC-2020-127" in ids(mini, "tensorflow", "2.0.2")
    assert ids(mini, "tensorflow", "2.9.0") == []


def test_smallest_version_fixing_all(mini: OsvDatabase) -> None:
    found = mini.advisories("tensorflow", "2.3.0")
    assert {"PYSEC-2021-189", "PYSEC-2020-127"} <= {a.id for a in found}
    by_id = {a.id: a for a in found}
    # every fix above the current version is kept, per advisory
    assert by_id["PYSEC-2021-189"].fix_versions == ("2.3.4", "2.4.3")
    assert by_id["PYSEC-2020-127"].fix_versions == ("2.3.1",)
    # 2.3.1 fixes PYSEC-2020-127 but is still inside PYSEC-2021-189's third interval
    fix = smallest_fix("2.3.0", found, mini.records("tensorflow"))
    assert fix == "2.3.4"
    for record in mini.records("tensorflow"):
        assert not record.affects(fix)


def test_prereleases_follow_pep440(mini: OsvDatabase) -> None:
    # fixed: 2.2.0rc0 ends the first interval; 2.2.0 starts the next one
    record = next(r for r in mini.records("tensorflow") if r.id == "PYSEC-2021-189")
    ranges = AffectedRange(record.affected[0].ranges, ())  # ranges alone, no versions list
    assert ranges.affects("2.1.9")
    assert not ranges.affects("2.2.0rc0")
    assert not ranges.affects("2.2.0rc2")
    assert ranges.affects("2.2.0")
    # scikit-learn PYSEC-2020-108: fixed at 0.24.dev0, so 0.24.0rc1 is fixed and 0.23.2 is not
    assert "PYSEC-2020-108" in ids(mini, "scikit-learn", "0.23.2")
    assert ids(mini, "scikit-learn", "0.24.0rc1") == []


def test_versions_only_record(mini: OsvDatabase) -> None:
    assert ids(mini, "gratient", "0.5") == ["PYSEC-2024-1"]
    assert ids(mini, "gratient", "0.5.0") == ["PYSEC-2024-1"]  # PEP 440 equal
    assert ids(mini, "gratient", "0.6") == []


def test_withdrawn_records_are_skipped(mini: OsvDatabase) -> None:
    assert mini.records("loguru") == ()
    assert "PYSEC-2022-43059" not in {r.id for r in mini.records("aiohttp")}
    assert ids(mini, "aiohttp", "3.8.0")  # the other aiohttp records still match


def test_last_affected(mini: OsvDatabase) -> None:
    assert ids(mini, "py", "1.11.0") == ["PYSEC-2022-42969"]
    assert ids(mini, "py", "1.11.1") == []


def test_names_are_normalised(mini: OsvDatabase) -> None:
    assert ids(mini, "Scikit_Learn", "0.23.2") == ids(mini, "scikit-learn", "0.23.2")
    assert ids(mini, "MLflow", "2.9.0")


def test_aliases_merge_into_one_advisory(mini: OsvDatabase) -> None:
    (merged,) = mini.advisories("distributed", "2021.9.0")
    assert merged.id == "PYSEC-2021-871"
    assert set(merged.aliases) == {
        "PYSEC-2021-872",
        "CVE-2021-42343",
        "GHSA-hwqr-f3v9-hwxr",
        "GHSA-j8fq-86c5-5v2r",
    }
    assert merged.fix_versions == ("2021.10.0",)


def test_severity_from_cvss_vectors(mini: OsvDatabase) -> None:
    by_id = {a.id: a for a in mini.advisories("mlflow", "2.9.0")}
    assert by_id["PYSEC-2023-252"].severity is Severity.HIGH
    assert by_id["PYSEC-2023-252"].cvss_score == 7.5
    assert by_id["PYSEC-2023-260"].severity is Severity.MEDIUM
    assert by_id["PYSEC-2024-51"].severity is None  # no vector, no rating: unscored
    (critical, *_) = mini.advisories("langchain", "0.0.150")
    assert critical.severity is Severity.CRITICAL and critical.cvss_score == 9.8


def _record(**extra: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "id": "GHSA-aaaa-bbbb-cccc",
        "modified": "2024-01-01T00:00:00Z",
        "summary": "test",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Some_Pkg"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}]}],
            }
        ],
    }
    doc.update(extra)
    return doc


def test_database_specific_severity_and_cvss4() -> None:
    compact = compact_records(_record(database_specific={"severity": "MODERATE"}))["some-pkg"]
    record = OsvRecord.from_compact(compact)
    (advisory,) = merge_advisories("some-pkg", "1.5", [record])
    assert advisory.severity is Severity.MEDIUM and advisory.cvss_score is None
    vector = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    compact = compact_records(_record(severity=[{"type": "CVSS_V4", "score": vector}]))
    (advisory,) = merge_advisories("some-pkg", "1.5", [OsvRecord.from_compact(compact["some-pkg"])])
    assert advisory.severity is Severity.CRITICAL and advisory.cvss_score == 9.3


def test_other_ecosystems_and_git_ranges_are_ignored() -> None:
    doc = _record()
    doc["affected"] = [
        {"package": {"ecosystem": "npm", "name": "some-pkg"}, "versions": ["1.0"]},
        {
            "package": {"ecosystem": "PyPI", "name": "x"},
            "ranges": [{"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc123"}]}],
        },
    ]
    assert compact_records(doc) == {}
    assert compact_records({"no": "id"}) == {}
    assert compact_records(["not", "a", "dict"]) == {}


def _as_json_records(directory: Path) -> list[tuple[str, bytes]]:
    out = []
    for path in sorted(OSV_MINI.glob("vulns/*/*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
        out.append((f"{path.stem}.json", json.dumps(doc, default=str).encode()))
    return out


def test_zip_export_and_json_directory_match_the_yaml(tmp_path: Path, isolated_cache) -> None:
    records = _as_json_records(OSV_MINI)
    export = tmp_path / "all.zip"
    with zipfile.ZipFile(export, "w") as archive:
        for name, data in records:
            archive.writestr(name, data)
        archive.writestr("broken.json", b"{ not json")
    folder = tmp_path / "json"
    folder.mkdir()
    for name, data in records:
        (folder / name).write_bytes(data)
    from_zip = OsvDatabase(export, cache_dir=isolated_cache)
    from_dir = OsvDatabase(folder, cache_dir=isolated_cache)
    yaml_db = OsvDatabase(OSV_MINI, cache_dir=isolated_cache)
    for name, version in [("tensorflow", "2.3.0"), ("mlflow", "2.9.0"), ("gratient", "0.5")]:
        expected = yaml_db.advisories(name, version)
        assert from_zip.advisories(name, version) == expected
        assert from_dir.advisories(name, version) == expected
    assert from_zip.info().kind == "osv-export"
    assert from_zip.info().bad_records == 1
    assert from_dir.info().records == yaml_db.info().records == 24


def test_index_is_cached_and_rebuilt_when_the_database_changes(
    tmp_path: Path, isolated_cache: Path
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    (folder / "A.json").write_text(json.dumps(_record()), encoding="utf-8")
    assert [a.id for a in OsvDatabase(folder, cache_dir=isolated_cache).advisories("some-pkg", "2")]
    (index_file,) = (isolated_cache / "osv-index").iterdir()
    before = index_file.stat().st_mtime_ns
    OsvDatabase(folder, cache_dir=isolated_cache).info()
    assert index_file.stat().st_mtime_ns == before  # reused, not rebuilt
    changed = _record(id="GHSA-dddd-eeee-ffff", withdrawn="2024-02-01T00:00:00Z")
    (folder / "A.json").write_text(json.dumps(changed), encoding="utf-8")
    os.utime(folder / "A.json", ns=(before + 10**9, before + 10**9))
    assert OsvDatabase(folder, cache_dir=isolated_cache).advisories("some-pkg", "2") == []


def test_missing_or_unusable_database(tmp_path: Path) -> None:
    with pytest.raises(MlsecError, match="not found"):
        OsvDatabase(tmp_path / "nope")
    bogus = tmp_path / "db.bin"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(MlsecError, match="neither an OSV export"):
        OsvDatabase(bogus).info()


def test_database_date_comes_from_the_records(mini: OsvDatabase) -> None:
    info = mini.info()
    assert info.date is not None and info.date.year == 2024
    assert (info.age_days() or 0) > 30


def test_pypa_layout_is_indexed_per_package_on_demand(isolated_cache: Path) -> None:
    db = OsvDatabase(OSV_MINI, cache_dir=isolated_cache)
    assert ids(db, "torch", "1.13.0") == ["PYSEC-2022-43015"]
    (index_file,) = (isolated_cache / "osv-index").iterdir()
    cached = json.loads(index_file.read_text())
    assert cached["layout"] == "folders"
    assert set(cached["folders"]) == {"torch"}  # only what was asked for was parsed
    again = OsvDatabase(OSV_MINI, cache_dir=isolated_cache)
    again.prefetch(["mlflow", "torch", "not-in-db"])
    assert set(json.loads(index_file.read_text())["folders"]) == {"torch", "mlflow"}
    summary = again.summary()
    assert (summary.records, summary.packages) == (26, 15)  # record files, folders
    assert summary.date is not None and summary.date.year == 2024


def test_changed_package_folder_is_reindexed(tmp_path: Path, isolated_cache: Path) -> None:
    db_dir = tmp_path / "db"
    shutil.copytree(OSV_MINI / "vulns", db_dir / "vulns")
    assert ids(OsvDatabase(db_dir, cache_dir=isolated_cache), "torch", "1.13.0")
    record = db_dir / "vulns" / "torch" / "PYSEC-2022-43015.yaml"
    record.chmod(0o644)
    record.write_text(
        record.read_text(encoding="utf-8") + 'withdrawn: "2024-01-01T00:00:00Z"\n',
        encoding="utf-8",
    )
    assert ids(OsvDatabase(db_dir, cache_dir=isolated_cache), "torch", "1.13.0") == []


def test_other_folder_layouts_get_a_full_index(tmp_path: Path, isolated_cache: Path) -> None:
    # osv/PyPI/*.json beside osv/npm/*.json: folders are ecosystems, not packages
    for ecosystem in ("PyPI", "npm"):
        (tmp_path / "osv" / ecosystem).mkdir(parents=True)
    for name, data in _as_json_records(OSV_MINI):
        (tmp_path / "osv" / "PyPI" / name).write_bytes(data)
    (tmp_path / "osv" / "npm" / "X.json").write_text(json.dumps(_record(id="NPM-1")))
    db = OsvDatabase(tmp_path / "osv", cache_dir=isolated_cache)
    assert db._package_layout() is None
    assert ids(db, "torch", "1.13.0") == ["PYSEC-2022-43015"]


_numbers = st.integers(min_value=0, max_value=30).map(str)
_suffixes = st.tuples(
    st.one_of(st.none(), st.tuples(st.sampled_from(["a", "b", "rc"]), _numbers)),
    st.one_of(st.none(), _numbers),
    st.one_of(st.none(), _numbers),
)


@given(st.lists(_numbers, min_size=1, max_size=4), st.integers(0, 2), _suffixes)
def test_equality_key_agrees_with_packaging(release, zeros, suffixes) -> None:
    pre, post, dev = suffixes
    tail = "".join(pre) if pre else ""
    tail += f".post{post}" if post is not None else ""
    tail += f".dev{dev}" if dev is not None else ""
    text = ".".join(release) + tail
    padded = ".".join(release + ["0"] * zeros) + tail  # PEP 440-equal to text
    assert equality_key(text) == canonicalize_version(Version(text))
    assert equality_key(padded) == equality_key(text)
    assert equality_key(str(Version(text))) == equality_key(text)


def test_damaged_index_cache_is_rebuilt(isolated_cache: Path) -> None:
    assert ids(OsvDatabase(OSV_MINI, cache_dir=isolated_cache), "torch", "1.13.0")
    (index_file,) = (isolated_cache / "osv-index").iterdir()
    data = json.loads(index_file.read_text())
    data["folders"]["torch"]["records"] = [["PYSEC-X", "not a list", None]]
    index_file.write_text(json.dumps(data))
    assert ids(OsvDatabase(OSV_MINI, cache_dir=isolated_cache), "torch", "1.13.0") == [
        "PYSEC-2022-43015"
    ]
