"""Compatibility: file kinds now live in :mod:`mlsec.models.sniff` (and the registry)."""

from mlsec.models.sniff import (
    HEAD_SIZE,
    LFS_PREFIX,
    PICKLE_EXTENSIONS,
    FileKind,
    is_keras_archive,
    is_keras_zip,
    parse_lfs_pointer,
    sniff,
)

__all__ = [
    "HEAD_SIZE",
    "LFS_PREFIX",
    "PICKLE_EXTENSIONS",
    "FileKind",
    "is_keras_archive",
    "is_keras_zip",
    "parse_lfs_pointer",
    "sniff",
]
