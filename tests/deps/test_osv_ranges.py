"""OSV ranges as the schema means them: each interval on its own, whatever the event order;
the smallest fix is a release no interval covers; local versions match public records."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsec.deps.osv import AffectedRange, OsvDatabase, intervals, smallest_fix

from .conftest import OSV_MINI


@pytest.fixture
def mini(isolated_cache: Path) -> OsvDatabase:
    return OsvDatabase(OSV_MINI, cache_dir=isolated_cache)


def ids(db: OsvDatabase, name: str, version: str) -> list[str]:
    return [a.id for a in db.advisories(name, version)]


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("0.12.1", False),
        ("0.12.2", True),
        ("0.12.6", True),
        ("0.13.0", True),  # the second interval, written first, starts where the first ends
        ("0.13.2", True),
        ("0.13.5.1", True),
        ("0.14.0rc1", False),
        ("0.14.0", False),
    ],
)
def test_out_of_order_touching_intervals_real_record(
    mini: OsvDatabase, version: str, affected: bool
) -> None:
    # PYSEC-2022-42972 (CVE-2022-43766): events introduced 0.13.0, fixed 0.14.0rc1,
    # introduced 0.12.2, fixed 0.13.0 - two touching intervals, the later one written first.
    assert (ids(mini, "apache-iotdb", version) == ["PYSEC-2022-42972"]) is affected


@pytest.mark.parametrize("version", ["0.12.3", "0.13.0", "0.13.5.1"])
def test_smallest_fix_is_a_release_no_interval_covers(mini: OsvDatabase, version: str) -> None:
    found = mini.advisories("apache-iotdb", version)
    assert found[0].aliases == ("CVE-2022-43766",)
    # 0.13.0 is the first interval's fix but inside the second; 0.14.0rc1 is a pre-release:
    # the release it leads to is the fix
    assert smallest_fix(version, found, mini.records("apache-iotdb")) == "0.14.0"


def test_smallest_fix_is_never_a_dev_release_unless_the_pin_is_one(mini: OsvDatabase) -> None:
    found = mini.advisories("scikit-learn", "0.23.0")
    assert smallest_fix("0.23.0", found, mini.records("scikit-learn")) == "0.24"


def test_smallest_fix_for_a_dev_pin_may_be_a_dev_release(mini: OsvDatabase) -> None:
    found = mini.advisories("scikit-learn", "0.23.0.dev1")
    assert [a.id for a in found] == ["PYSEC-2020-108"]
    assert smallest_fix("0.23.0.dev1", found, mini.records("scikit-learn")) == "0.24.dev0"


@pytest.mark.parametrize(
    "events",
    [
        [("introduced", "1.0"), ("fixed", "2.0"), ("introduced", "3.0"), ("fixed", "4.0")],
        [("introduced", "3.0"), ("fixed", "4.0"), ("introduced", "1.0"), ("fixed", "2.0")],
        [("introduced", "3.0"), ("introduced", "1.0"), ("fixed", "2.0"), ("fixed", "4.0")],
    ],
)
def test_disjoint_intervals_in_any_order(events: list[tuple[str, str]]) -> None:
    rng = AffectedRange((tuple(events),), ())
    assert [rng.affects(v) for v in ("0.9", "1.0", "1.9", "2.0", "2.5", "3.0", "3.9", "4.0")] == [
        False, True, True, False, False, True, True, False,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("version", "affected"),
    [("2.11.5", True), ("2.11.6", True), ("2.11.7", False), ("2.12.3", True), ("2.12.4", False)],
)
def test_overlapping_intervals_real_record(mini: OsvDatabase, version: str, affected: bool) -> None:
    # PYSEC-2021-114: [2.11, 2.11.7) [0, 2.11.6) [2.12, 2.12.4) in one events list; the
    # lowest-fix pairing would end the first at 2.11.6
    assert ("PYSEC-2021-114" in ids(mini, "wagtail", version)) is affected


def test_overlapping_intervals_keep_both() -> None:
    # [1.0, 2.0) and [1.5, 3.0): a single sorted walk closes both at 2.0
    rng = AffectedRange(((("introduced", "1.0"), ("fixed", "2.0"), ("introduced", "1.5"),
                          ("fixed", "3.0")),), ())  # fmt: skip
    assert rng.affects("2.5") and not rng.affects("3.0") and not rng.affects("0.5")


def test_last_affected_and_open_intervals() -> None:
    (interval,) = intervals([("introduced", "0"), ("last_affected", "1.4")])
    assert interval[2] is True
    rng = AffectedRange(((("introduced", "0"), ("last_affected", "1.4")),), ())
    assert rng.affects("1.4") and not rng.affects("1.4.1")
    open_ended = AffectedRange(((("introduced", "2.0"),),), ())
    assert open_ended.affects("99") and not open_ended.affects("1.9")


@pytest.mark.parametrize("pin", ["1.13.0+cu117", "1.13.0+cpu"])
def test_local_versions_match_their_public_release(mini: OsvDatabase, pin: str) -> None:
    assert ids(mini, "torch", pin) == ids(mini, "torch", "1.13.0") != []
    found = mini.advisories("torch", pin)
    assert smallest_fix(pin, found, mini.records("torch")) == "1.13.1"


def test_local_version_against_last_affected(mini: OsvDatabase) -> None:
    # py PYSEC-2022-42969: last_affected 1.11.0; a local build of 1.11.0 is 1.11.0
    assert ids(mini, "py", "1.11.0+local") == ["PYSEC-2022-42969"]


def test_versions_list_matches_local_builds(mini: OsvDatabase) -> None:
    assert ids(mini, "gratient", "0.5+abc") == ["PYSEC-2024-1"]
