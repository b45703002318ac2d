"""Sigstore model signatures: policy, trusted roots, bundle verification, model-signing
manifests and signing. The scan-time entry point is :mod:`mlsec.analyzers.signatures`; the
``mlsec sign`` command uses :mod:`mlsec.signatures.sign`."""
