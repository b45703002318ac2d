"""Allowlist policy, [models] configuration, benign fixtures, the demo repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsec.analyzers.pickle_policy import (
    ModelsConfig,
    PicklePolicy,
    Tier,
    parse_models_config,
)
from mlsec.errors import ConfigError

from .conftest import hits, scan_path, stack_global

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "fixtures" / "models"
DEMO = REPO / "fixtures" / "demo-repo"


@pytest.mark.parametrize(
    ("module", "name", "tier"),
    [
        ("torch._utils", "_rebuild_tensor_v2", Tier.SAFE),
        ("collections", "OrderedDict", Tier.SAFE),
        ("numpy.core.multiarray", "_reconstruct", Tier.SAFE),
        ("numpy._core.multiarray", "_reconstruct", Tier.SAFE),
        ("__builtin__", "set", Tier.SAFE),  # Python 2 name
        ("copy_reg", "_reconstructor", Tier.SAFE),
        ("sklearn.linear_model._logistic", "LogisticRegression", Tier.ML),
        ("xgboost.core", "Booster", Tier.ML),
        ("pandas.core.frame", "DataFrame", Tier.ML),
        ("mypkg.models", "Net", Tier.UNKNOWN),
        ("__main__", "Exploit", Tier.UNKNOWN),
        ("posix", "system", Tier.CRITICAL),
        ("nt", "spawnv", Tier.CRITICAL),
        ("_posixsubprocess", "fork_exec", Tier.CRITICAL),
        ("torch", "load", Tier.CRITICAL),
        ("numpy", "load", Tier.CRITICAL),
        ("torch.hub", "load", Tier.CRITICAL),
        ("builtins", "__import__", Tier.CRITICAL),
        ("torch._utils", "_rebuild_tensor_v2.__globals__", Tier.UNKNOWN),
    ],
)
def test_policy_tiers(module: str, name: str, tier: Tier) -> None:
    verdict = PicklePolicy.load().classify(module, name)
    assert verdict.tier is tier, verdict
    assert verdict.reason


def test_python2_and_alias_resolution() -> None:
    policy = PicklePolicy.load()
    assert policy.resolve("__builtin__", "eval") == ("builtins", "eval")
    assert policy.resolve("commands", "getoutput") == ("subprocess", "getoutput")
    assert policy.resolve("posix", "system") == ("os", "system")
    assert policy.resolve("_io", "open") == ("io", "open")
    assert policy.resolve("ntpath", "join") == ("os.path", "join")


def test_config_allow_and_trusted(scan_file, tmp_path) -> None:
    (tmp_path / "repo").mkdir()
    payload = stack_global("mypkg.layers", "Custom")
    report = scan_file("m.pkl", payload)
    assert ("MLS104", "high", "m.pkl", None) in hits(report)
    (tmp_path / "repo" / ".mlsec.toml").write_text('[models]\ntrusted = ["mypkg.*"]\n')
    report = scan_file("m.pkl", payload)
    assert ("MLS103", "medium", "m.pkl", None) in hits(report)
    (tmp_path / "repo" / ".mlsec.toml").write_text(
        '[models]\nallow = ["mypkg.layers.Custom"]\nmodelscan = false\n'
    )
    report = scan_file("m.pkl", payload)
    assert hits(report) == {("MLS102", "info", "m.pkl", None)}
    # Critical callables cannot be allowed away.
    (tmp_path / "repo" / ".mlsec.toml").write_text('[models]\nallow = ["os.*", "posix.*"]\n')
    report = scan_file("m.pkl", stack_global("posix", "system"))
    assert ("MLS101", "critical", "m.pkl", None) in hits(report)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"alow": []}, "unknown key"),
        ({"allow": "mypkg.*"}, "list of strings"),
        ({"trusted": ["no dots"]}, "not a 'module.name' pattern"),
        ({"modelscan": "yes"}, '"auto", "always" or "off"'),
    ],
)
def test_config_validation(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_models_config(section, "x/.mlsec.toml")
    assert parse_models_config({"modelscan": False}) == ModelsConfig(modelscan="off")


def test_bad_config_is_exit_2(tmp_path, cli) -> None:
    (tmp_path / ".mlsec.toml").write_text("[models]\nunknown = 1\n")
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04N.")
    proc = cli("scan", tmp_path)
    assert proc.returncode == 2
    assert "unknown" in proc.stderr


EXPECTED_FORMATS = {
    "torch_state_dict.pt": ("pytorch-zip", "pytorch"),
    "torch_checkpoint.pth": ("pytorch-zip", "pytorch"),
    "torch_legacy.pt": ("pytorch-legacy", "pytorch"),
    "torchscript_model.pt": ("torchscript", "pytorch"),
    "torch_full_module.pt": ("pytorch-zip", "pytorch"),
    "sklearn_pipeline.pkl": ("pickle", "scikit-learn"),
    "sklearn_pipeline.joblib": ("joblib", "scikit-learn"),
    "sklearn_pipeline.joblib.gz": ("joblib", "scikit-learn"),
    "sklearn_pipeline.joblib.bz2": ("joblib", "scikit-learn"),
    "sklearn_pipeline.joblib.xz": ("joblib", "scikit-learn"),
    "sklearn_pipeline.joblib.lzma": ("joblib", "scikit-learn"),
    "sklearn_pipeline.joblib.lz4": ("joblib", "scikit-learn"),
    "sklearn_pipeline.joblib.z": ("joblib", "scikit-learn"),
    "pandas_frame.pkl": ("pickle", "pandas"),
    "numpy_array.npy": ("numpy", "numpy"),
    "numpy_objects.npy": ("numpy", "numpy"),
    "numpy_arrays.npz": ("npz", "numpy"),
}


def test_benign_fixtures_stay_at_or_below_medium() -> None:
    report = scan_path(MODELS)
    assert not report.errors
    loud = [f for f in report.findings if f.severity.rank > 2]
    assert not loud, loud
    assert not [f for f in report.findings if f.rule_id in ("MLS100", "MLS105", "MLS111", "MLS904")]
    facts = {f.path: (f.format, f.framework) for f in report.facts["models"].files}
    assert facts == EXPECTED_FORMATS
    meta = {f.path: f.metadata for f in report.facts["models"].files}
    # Sequential(Linear(4, 3), ReLU(), Linear(3, 2)): 12 + 3 + 6 + 2 elements in 4 tensors
    assert (
        meta["torch_state_dict.pt"]["tensors"],
        meta["torch_state_dict.pt"]["tensor_elements"],
    ) == (4, 23)
    assert meta["sklearn_pipeline.joblib.gz"]["compression"] == "gzip"
    # Plain weights are info only; library objects are the medium tier.
    by_path = {}
    for f in report.findings:
        by_path.setdefault(f.path, set()).add(f.rule_id)
    assert by_path["torch_state_dict.pt"] == {"MLS102"}
    assert by_path["torch_legacy.pt"] == {"MLS102"}
    assert by_path["torchscript_model.pt"] == {"MLS102"}
    assert by_path["sklearn_pipeline.joblib.xz"] == {"MLS102", "MLS103"}
    assert "numpy_array.npy" not in by_path


def test_demo_repository_models(tmp_path) -> None:
    report = scan_path(DEMO / "models")
    found = hits(report)
    assert ("MLS101", "critical", "finetune_epoch3.pt", "run-7f3a/.cache/tokenizer_state") in found
    assert not [f for f in report.findings if f.path == "classifier.pt" and f.severity.rank > 0]
