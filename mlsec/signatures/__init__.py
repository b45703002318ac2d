"""Sigstore model signatures: policy, trusted roots, bundle verification, model-signing
manifests and signing. The scan-time entry point is :mod:`mlsec.analyzers.signatures` (which
imports :mod:`mlsec.signatures.check` only when there is something to verify); the
``mlsec sign`` command uses :mod:`mlsec.signatures.sign`."""
