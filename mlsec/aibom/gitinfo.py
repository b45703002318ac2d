"""Git provenance through gitpython: commit, branch, tag, dirty state, remote URL.

The remote URL is stripped of credentials (``https://user:token@host/...`` becomes
``https://host/...``) before it goes anywhere near a BOM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlsec.aibom.facts import GitProvenance

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")


def strip_credentials(url: str) -> str:
    """The URL without user name or password (tokens are often put there)."""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    scp = _SCP_LIKE.match(url)
    if scp:  # git@github.com:org/repo.git: the user name is the protocol's, not a secret
        return f"{scp.group(1)}:{scp.group(2)}"
    return url


def web_url(remote: str) -> str | None:
    """An https URL for a remote on a known forge (github.com:org/x.git -> https://...)."""
    match = re.match(r"^(?:https?|ssh|git)://([^/]+)/(.+?)(?:\.git)?/?$", remote)
    if not match:
        match = _SCP_LIKE.match(remote)
    if not match:
        return None
    host, path = match.group(1), match.group(2)
    path = path[:-4] if path.endswith(".git") else path
    host = host.split("@")[-1].split(":")[0]
    return f"https://{host}/{path.strip('/')}"


def repository_name(remote: str | None, root: Path) -> str:
    if remote:
        url = web_url(remote)
        if url:
            return url.rstrip("/").rsplit("/", 1)[-1]
    return root.resolve().name or "repository"


class GitRepo:
    """The git repository containing ``root``, or nothing when there is none (or no git)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._repo = None
        try:
            import git  # gitpython; lazily, it is slow to import and spawns git

            repo = git.Repo(self.root, search_parent_directories=True)
            if repo.bare or repo.working_tree_dir is None:
                return
            repo.head.commit  # noqa: B018 - raises ValueError on a repository with no commit
            self._repo = repo
            self._top = Path(repo.working_tree_dir).resolve()
        except Exception:  # gitpython raises many kinds; no usable repository means no git facts
            self._repo = None

    @property
    def available(self) -> bool:
        return self._repo is not None

    def provenance(self) -> GitProvenance | None:
        repo = self._repo
        if repo is None:
            return None
        head = repo.head.commit
        branch = None if repo.head.is_detached else repo.active_branch.name
        try:
            tags = sorted(repo.git.tag("--points-at", "HEAD").split())
        except Exception:  # an old git without --points-at: no tag rather than a crash
            tags = []
        remote_url = None
        remotes = sorted(repo.remotes, key=lambda r: (r.name != "origin", r.name))
        for remote in remotes:
            urls = list(remote.urls)
            if urls:
                remote_url = strip_credentials(urls[0])
                break
        return GitProvenance(
            commit=head.hexsha,
            branch=branch,
            dirty=repo.is_dirty(untracked_files=True, path=str(self.root)),
            tag=tags[-1] if tags else None,
            remote_url=remote_url,
            commit_time=int(head.committed_date),
        )

    def _rel(self, path: str) -> str:
        """A scan-root relative path as a path relative to the work tree's top."""
        full = (self.root / path).resolve() if path != "." else self.root
        return full.relative_to(self._top).as_posix() or "."

    def model_state(self, paths: Sequence[str]) -> tuple[str | None, bool]:
        """(last commit touching these paths, whether all are tracked and unchanged)."""
        repo = self._repo
        if repo is None or not paths:
            return None, False
        try:
            rels = [self._rel(p) for p in paths]
            last = repo.git.log("-1", "--format=%H", "--", *rels).strip() or None
            tracked = set(repo.git.ls_files("--", *rels).splitlines())
            changed = repo.git.status("--porcelain", "--", *rels).strip()
        except Exception:  # a path outside the work tree or a git failure: no provenance
            return None, False
        committed = last is not None and all(r in tracked for r in rels) and not changed
        return last, committed
