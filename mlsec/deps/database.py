"""`mlsec db update` / `mlsec db info`: the cached offline copy of osv.dev's PyPI export.

The export (``all.zip``, every PyPI advisory as OSV JSON) is downloaded into a cache directory
with a small metadata file (``mlsec-db.json``: source URL, download time, SHA-256, size) and
indexed right away, so the next ``mlsec scan --offline`` starts from the index. The download
goes to a temporary file and replaces the old export only once it is complete and a valid zip.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from mlsec.config import default_cache_dir
from mlsec.deps.osv import (
    EXPORT_FILE,
    METADATA_FILE,
    DatabaseInfo,
    OsvDatabase,
    default_database_dir,
)
from mlsec.errors import MlsecError

OSV_PYPI_EXPORT = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
MAX_EXPORT_BYTES = 2 * 1024**3


def update_database(
    directory: Path | None = None,
    *,
    url: str = OSV_PYPI_EXPORT,
    timeout: float = 60.0,
) -> DatabaseInfo:
    """Download the export into ``directory`` (default: the cache) and index it."""
    directory = directory or default_database_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MlsecError(f"cannot create {directory}: {exc.strerror}") from None
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=".all.zip.", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "mlsec"})  # noqa: S310
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                while chunk := response.read(1024 * 1024):
                    size += len(chunk)
                    if size > MAX_EXPORT_BYTES:
                        raise MlsecError(f"{url} is larger than {MAX_EXPORT_BYTES} bytes")
                    digest.update(chunk)
                    out.write(chunk)
        if not zipfile.is_zipfile(tmp):
            raise MlsecError(f"{url} did not return a zip file", hint="check the --url")
        os.replace(tmp, directory / EXPORT_FILE)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise MlsecError(
            f"cannot download the vulnerability database from {url}: {reason}",
            hint="check the network or proxy settings (HTTPS_PROXY); on an air-gapped "
            "machine copy an all.zip downloaded elsewhere and pass it with --vuln-db",
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    metadata = {
        "url": url,
        "downloaded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sha256": digest.hexdigest(),
        "size": size,
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", "utf-8")
    return OsvDatabase(directory, cache_dir=default_cache_dir()).info()


def database_info(path: Path | None = None) -> DatabaseInfo:
    """What the given database (default: the cached export) holds, indexing it if needed."""
    path = path or default_database_dir()
    if path == default_database_dir() and not (path / EXPORT_FILE).is_file():
        raise MlsecError(
            f"no vulnerability database in {path}",
            hint="run `mlsec db update` (needs the network once) or pass --vuln-db PATH",
        )
    return OsvDatabase(path, cache_dir=default_cache_dir()).info()
