"""Hostile bundles and statements: only the module's own errors, never a crash."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec.signatures.bundle import BundleError, parse_bundle
from mlsec.signatures.manifest import ManifestError, parse_statement

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "mediaType",
                    "verificationMaterial",
                    "publicKey",
                    "certificate",
                    "x509CertificateChain",
                    "certificates",
                    "rawBytes",
                    "dsseEnvelope",
                    "payload",
                    "payloadType",
                    "signatures",
                    "sig",
                    "messageSignature",
                    "messageDigest",
                    "digest",
                    "tlogEntries",
                    "hint",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_json)
def test_parse_bundle_only_raises_bundle_error(value):
    with contextlib.suppress(BundleError):
        parse_bundle(json.dumps(value))


_statement_keys = st.sampled_from(
    [
        "_type",
        "subject",
        "name",
        "digest",
        "sha256",
        "predicateType",
        "predicate",
        "serialization",
        "resources",
        "method",
        "shard_size",
        "algorithm",
        "ignore_paths",
    ]
)
_stmt = st.recursive(
    st.none()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(
        [
            "https://in-toto.io/Statement/v1",
            "https://model_signing/signature/v1.0",
            "https://model_signing/Digests/v0.1",
            "files",
            "shards",
            "sha256",
            "blake2b",
            "sha256-sharded-10",
            "00",
            "a:0:5",
            "../x",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_statement_keys, children, max_size=6)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(_stmt)
def test_parse_statement_only_raises_manifest_error(value):
    with contextlib.suppress(ManifestError):
        parse_statement(json.dumps(value).encode())


@pytest.mark.parametrize("blob", [b"\xff\xfe", b"{" * 10000, b"null", b'"x"'])
def test_parse_statement_odd_payloads(blob):
    with pytest.raises(ManifestError):
        parse_statement(blob)


def test_blake3_manifest(tmp_path, keypair, scan_repo):
    blake3 = pytest.importorskip("blake3")
    from tests.signatures.helpers import (
        findings,
        key_policy,
        model_statement,
        signed_statement_bundle,
        write_config,
    )

    data = b"blake3 weights" * 1000
    statement = model_statement(
        [{"name": "w.bin", "algorithm": "blake3", "digest": blake3.blake3(data).hexdigest()}],
        {"method": "files", "hash_type": "blake3", "allow_symlinks": False},
    )
    root = tmp_path / "repo"
    (root / "m").mkdir(parents=True)
    (root / "m" / "w.bin").write_bytes(data)
    (root / "m" / "model.sig").write_text(signed_statement_bundle(statement, keypair.key))
    write_config(root, key_policy(keypair.public))
    assert findings(scan_repo(root)) == []
    (root / "m" / "w.bin").write_bytes(data + b"x")
    assert findings(scan_repo(root)) == [("MLS405", "high", "m/w.bin")]


@pytest.mark.network
def test_online_trusted_root_refresh_through_tuf():
    from mlsec.signatures.trust import load_trust

    trust = load_trust(None, offline=False)
    assert trust.description.startswith("TUF https://tuf-repo-cdn.sigstore.dev sha256:")
