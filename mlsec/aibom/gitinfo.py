"""Git provenance: commit, branch, tag, dirty state, remote URL, each model's last commit.

The remote URL is stripped of credentials (``https://user:token@host/...`` becomes
``https://host/...``) before it goes anywhere near a BOM.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
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
    """The git repository containing ``root``, or nothing when there is none (or no git).

    Plumbing calls for the whole repository, however many model files there are (three
    plain git calls cost less than importing gitpython, which also starts git three times):

    - ``rev-parse``: the work tree's top, HEAD's commit and branch (none in a bare
      repository or one without commits: no provenance);
    - ``show -s``: HEAD's commit time; ``tag --points-at HEAD``; ``config``: the remotes;

    - ``ls-files -s``: tracked paths and their index blob ids;
    - ``diff-files``: paths whose stat data differs from the index (no content is read);
    - ``hash-object --stdin-paths`` on those only: which really changed (git streams big
      files here, where ``git diff --raw`` reads a whole checkpoint into memory);
    - ``diff-index --cached HEAD``: staged changes (index against HEAD, no work tree read);
    - ``ls-files --others``: whether untracked files exist;
    - one ``log --name-only``, read as a stream and stopped once every model file's last
      commit is known.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._top = self.root
        self._head: str | None = None  # HEAD's commit; None: no usable repository
        self._branch: str | None = None
        self.calls = 0  # git subprocesses run by this object (the provenance's cost)
        self._state: _TreeState | None = None
        try:
            out = self._git("rev-parse", "--show-toplevel", "HEAD", "--abbrev-ref", "HEAD")
            top, head, branch = os.fsdecode(out).splitlines()[:3]
        except (OSError, ValueError, subprocess.SubprocessError):
            # No git, no repository, a bare one, no commit yet: no git facts.
            return
        self._top = Path(top).resolve()
        self._head = head
        self._branch = None if branch == "HEAD" else branch  # "HEAD": detached

    @property
    def available(self) -> bool:
        return self._head is not None

    def _git(self, *args: str, stdin: bytes | None = None) -> bytes:
        self.calls += 1
        done = subprocess.run(
            ["git", "-C", str(self._top), "-c", "core.quotepath=off", *args],
            input=stdin,
            capture_output=True,
            check=True,
            timeout=GIT_TIMEOUT,
        )
        return done.stdout

    def _remote_url(self) -> str | None:
        """The URL of ``origin``, else of the first remote by name, without credentials."""
        try:
            out = self._git("config", "-z", "--get-regexp", r"^remote\..*\.url$")
        except subprocess.CalledProcessError:  # exit 1: no remote at all
            return None
        urls: dict[str, str] = {}
        for entry in os.fsdecode(out).split("\0"):
            key, _, url = entry.partition("\n")
            name = key[len("remote.") : -len(".url")]
            if name and url:
                urls.setdefault(name, url)
        for name in sorted(urls, key=lambda n: (n != "origin", n)):
            return strip_credentials(urls[name])
        return None

    def _scope(self) -> str:
        return self._rel(".")

    def _tree_state(self) -> _TreeState:
        if self._state is not None:
            return self._state
        scope = self._scope()
        index: dict[str, str] = {}
        for entry in _nul_split(self._git("ls-files", "-s", "-z", "--", scope)):
            meta, _, path = entry.partition("\t")
            fields = meta.split()
            if len(fields) == 3 and fields[2] == "0":
                index[path] = fields[1]
        stat_dirty = [
            p for p in _nul_split(self._git("diff-files", "--name-only", "-z", "--", scope))
        ]
        changed: set[str] = set()
        # Deleted in the work tree, or a name --stdin-paths cannot carry: changed.
        present = [p for p in stat_dirty if "\n" not in p and (self._top / p).is_file()]
        changed |= set(stat_dirty) - set(present)
        if present:
            out = self._git("hash-object", "--stdin-paths", stdin="\n".join(present).encode())
            for path, blob in zip(present, out.decode().split(), strict=False):
                if index.get(path) != blob:
                    changed.add(path)
        staged = set(
            _nul_split(
                self._git("diff-index", "--cached", "--name-only", "-z", "HEAD", "--", scope)
            )
        )
        untracked = bool(
            self._git(
                "ls-files", "--others", "--exclude-standard", "-z", "--directory", "--", scope
            )
        )
        self._state = _TreeState(index, changed | staged, untracked)
        return self._state

    def provenance(self) -> GitProvenance | None:
        if self._head is None:
            return None
        try:
            commit_time = int(self._git("show", "-s", "--format=%ct", self._head).strip())
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
        try:
            tags = sorted(self._git("tag", "--points-at", "HEAD").decode().split())
        except Exception:  # an old git without --points-at: no tag rather than a crash
            tags = []
        try:
            remote_url = self._remote_url()
        except Exception:  # an unreadable configuration: no remote
            remote_url = None
        try:
            state = self._tree_state()
            dirty = bool(state.changed or state.untracked)
        except Exception:  # git failed: say dirty rather than clean
            dirty = True
        return GitProvenance(
            commit=self._head,
            branch=self._branch,
            dirty=dirty,
            tag=tags[-1] if tags else None,
            remote_url=remote_url,
            commit_time=commit_time,
        )

    def _rel(self, path: str) -> str:
        """A scan-root relative path as a path relative to the work tree's top."""
        full = (self.root / path).resolve() if path != "." else self.root
        return full.relative_to(self._top).as_posix() or "."

    def model_states(
        self, models: Mapping[str, Sequence[str]]
    ) -> dict[str, tuple[str | None, bool]]:
        """For each model (key) and its files (scan-root relative): the last commit touching
        them and whether all are tracked and unchanged."""
        if self._head is None or not models:
            return {}
        try:
            state = self._tree_state()
            rels = {key: [self._rel(p) for p in paths] for key, paths in models.items()}
            wanted = {r for paths in rels.values() for r in paths if r in state.index}
            last = self._last_commits(wanted)
        except Exception:  # a path outside the work tree or a git failure: no provenance
            return {}
        out: dict[str, tuple[str | None, bool]] = {}
        for key, paths in rels.items():
            commits = [last[p] for p in paths if p in last]
            # The newest commit among the files' last commits: log lists newest first.
            newest = min(commits, key=lambda c: c[0])[1] if commits else None
            committed = (
                newest is not None
                and all(p in state.index for p in paths)
                and not any(p in state.changed for p in paths)
            )
            out[key] = (newest, committed)
        return out

    def _last_commits(self, paths: set[str]) -> dict[str, tuple[int, str]]:
        """path -> (position in log order, commit) of the last commit touching it."""
        found: dict[str, tuple[int, str]] = {}
        if not paths:
            return found
        self.calls += 1
        args = ["git", "-C", str(self._top), "-c", "core.quotepath=off", "log"]
        args += ["--format=%x01%H", "--name-only", "--no-renames", "-z", "--", self._scope()]
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
            assert proc.stdout is not None
            commit, position, tail = "", 0, b""
            try:
                while len(found) < len(paths):
                    chunk = os.read(proc.stdout.fileno(), 1 << 16)
                    if not chunk:
                        break
                    *tokens, tail = (tail + chunk).split(b"\0")
                    for raw in tokens:
                        token = raw.decode("utf-8", "surrogateescape").lstrip("\n")
                        if token.startswith("\x01"):
                            commit, position = token[1:], position + 1
                        elif token in paths and token not in found:
                            found[token] = (position, commit)
            finally:
                proc.kill()  # every wanted path found: the rest of history is not needed
        return found


GIT_TIMEOUT = 120


class _TreeState:
    __slots__ = ("changed", "index", "untracked")

    def __init__(self, index: dict[str, str], changed: set[str], untracked: bool) -> None:
        self.index = index  # tracked path (top-relative) -> index blob id
        self.changed = changed  # tracked paths that differ from HEAD (work tree or index)
        self.untracked = untracked  # untracked files exist in the scope


def _nul_split(data: bytes) -> list[str]:
    return [p for p in data.decode("utf-8", "surrogateescape").split("\0") if p]
