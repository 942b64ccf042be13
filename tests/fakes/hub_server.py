"""A local stand-in for the Hugging Face Hub that speaks the routes ``huggingface_hub`` and ``datasets`` use.

Write side: ``GET /api/whoami-v2``, ``POST /api/repos/create``, ``POST /api/validate-yaml``,
``POST /api/datasets/{repo}/preupload/{rev}`` and ``POST /api/datasets/{repo}/commit/{rev}`` (NDJSON with
``header``, ``file`` (base64), ``deletedFile`` and ``deletedFolder`` lines). Preupload answers ``regular`` for
every file and no ``X-Xet-*`` header is ever sent, so the client takes the plain HTTP path (no LFS, no Xet).

Read side: ``GET /api/datasets/{repo}[/revision/{rev}]``, ``GET /api/datasets/{repo}/tree/{rev}[/{path}]``,
``POST /api/datasets/{repo}/paths-info/{rev}`` and ``GET``/``HEAD /datasets/{repo}/resolve/{rev}/{path}``
(with ``ETag``, ``X-Repo-Commit``, ``Content-Length`` and ``Range``).

Repositories live in memory; every commit keeps a full snapshot, so files resolve at any revision and
tests can count commits. Tokens map to users (``server.tokens``); a user may write to its own namespace
and its organisations only, anything else is a 403 as on the Hub. Commit faults are taken from
``server.commit_faults`` (one per commit call) or ``server.always_commit_fault``: ``"500"`` answers an
internal error, ``"drop"`` reads the request and closes the connection without answering, ``"lost"`` makes
the commit and then closes the connection (the answer is lost on the way back), ``"hang"`` reads the request
and never answers (until the server stops): a Hub that accepts connections and then goes silent.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TOKEN = "hf_fake_write_token_never_real_0123456789"
USER = "alice"

# The Hub's accepted size categories (the card validator rejects anything else).
SIZE_CATEGORIES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M",
                   "100M<n<1B", "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T"}


def git_blob_id(data: bytes) -> str:
    """The id git gives a blob: what the Hub reports as a regular file's ``oid``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    summary: str
    files: dict[str, bytes]
    added: list[str]
    deleted: list[str]


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def at(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.head
        return next((c for c in self.commits if c.oid.startswith(revision) and len(revision) >= 7), None)


class FakeHubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tokens: dict[str, str] = {TOKEN: USER}
        self.read_only: set[str] = set()  # tokens whose role is "read"
        self.orgs: dict[str, list[str]] = {USER: ["alice-org"]}
        self.repos: dict[str, Repo] = {}
        self.commit_faults: deque[str] = deque()
        self.always_commit_fault: str | None = None
        self.commit_calls = 0
        self.requests: list[tuple[str, str]] = []
        self.unrouted: list[tuple[str, str]] = []  # anything the client asked that this fake does not speak
        self.bodies: list[bytes] = []
        self._serial = itertools.count()
        self.lock = threading.RLock()
        self.stopping = threading.Event()  # releases "hang" handlers

    def handle_error(self, request, client_address) -> None:
        pass  # dropped connections are part of the fault tests

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeHubServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()

    def add_repo(self, repo_id: str, files: dict[str, bytes] | None = None, private: bool = False) -> Repo:
        """A dataset repo with the Hub's initial commit (``.gitattributes``), plus ``files`` if given."""
        with self.lock:
            repo = Repo(repo_id, private)
            self.repos[repo_id] = repo
            attributes = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
            self.commit(repo, "initial commit", {".gitattributes": attributes}, [])
            if files:
                self.commit(repo, "seed files", files, [])
            return repo

    def commit(self, repo: Repo, summary: str, added: dict[str, bytes], deleted: list[str]) -> Commit:
        with self.lock:
            parent = repo.commits[-1] if repo.commits else None
            files = dict(parent.files) if parent else {}
            for path in deleted:
                files.pop(path, None)
            files.update(added)
            digest = hashlib.sha1(f"{next(self._serial)}:{repo.repo_id}:{summary}".encode())
            for path in sorted(files):
                digest.update(path.encode() + git_blob_id(files[path]).encode())
            commit = Commit(digest.hexdigest(), parent.oid if parent else None, summary, files,
                            sorted(added), sorted(deleted))
            repo.commits.append(commit)
            return commit

    @staticmethod
    def token_of(headers) -> str | None:
        auth = headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def user_of(self, headers) -> str | None:
        return self.tokens.get(self.token_of(headers) or "")

    def can_write(self, user: str | None, repo_id: str, token: str | None = None) -> bool:
        namespace = repo_id.split("/")[0]
        return (user is not None and token not in self.read_only
                and (namespace == user or namespace in self.orgs.get(user, [])))

    def can_read(self, user: str | None, repo: Repo) -> bool:
        return not repo.private or self.can_write(user, repo.repo_id)

    def next_commit_fault(self) -> str | None:
        with self.lock:
            self.commit_calls += 1
            return self.commit_faults.popleft() if self.commit_faults else self.always_commit_fault


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES = [
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/datasets/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/datasets/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("POST", re.compile(rf"^/api/datasets/{_REPO}/paths-info/(?P<rev>[^/]+)$"), "paths_info"),
    ("GET", re.compile(rf"^/api/datasets/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("GET", re.compile(rf"^/api/datasets/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"), "info"),
    ("GET", re.compile(rf"^/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("HEAD", re.compile(rf"^/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHubServer

    def log_message(self, *args) -> None:  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.bodies.append(body)
        return body

    def _send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        if raw is None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers)

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query)
        path = unquote(parts.path)
        with self.server.lock:
            self.server.requests.append((self.command, path))
        for method, pattern, name in _ROUTES:
            match = pattern.match(path)
            if method == self.command and match:
                getattr(self, f"_do_{name}")(**{k: v for k, v in match.groupdict().items()})
                return
        self._body()
        with self.server.lock:
            self.server.unrouted.append((self.command, path))
        self._error(404, f"no route for {self.command} {path}")

    do_GET = do_POST = do_HEAD = _dispatch

    def _repo(self, repo_id: str, write: bool = False) -> Repo | None:
        """The repo if the caller may use it; otherwise answers as the Hub does and returns None."""
        user = self.server.user_of(self.headers)
        repo = self.server.repos.get(repo_id)
        if repo is None or not self.server.can_read(user, repo):
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        if write and not self.server.can_write(user, repo_id, self.server.token_of(self.headers)):
            self._error(403, f"You don't have the rights to write to {repo_id}")
            return None
        return repo

    def _commit_at(self, repo: Repo, rev: str) -> Commit | None:
        commit = repo.at(unquote(rev))
        if commit is None:
            self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    # -- write side ----------------------------------------------------------------------------

    def _do_whoami(self) -> None:
        user = self.server.user_of(self.headers)
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return
        self._send(200, {
            "type": "user", "name": user, "fullname": user.title(),
            "orgs": [{"type": "org", "name": org} for org in self.server.orgs.get(user, [])],
            "auth": {"type": "access_token", "accessToken": {
                "displayName": "tests", "role": "read" if self.server.token_of(self.headers) in self.server.read_only
                else "write"}},
        })

    def _do_create_repo(self) -> None:
        body = json.loads(self._body() or b"{}")
        user = self.server.user_of(self.headers)
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return
        namespace = body.get("organization") or user
        repo_id = f"{namespace}/{body['name']}"
        if body.get("type") != "dataset":
            self._error(400, "this fake only hosts datasets")
            return
        if not self.server.can_write(user, repo_id, self.server.token_of(self.headers)):
            self._error(403, f'You don\'t have the rights to create a dataset under the namespace "{namespace}"')
            return
        url = f"{self.server.url}/datasets/{repo_id}"
        with self.server.lock:
            if repo_id in self.server.repos:
                self._send(409, {"error": "You already created this dataset repo", "url": url})
                return
            private = body.get("visibility") == "private" or bool(body.get("private"))
            self.server.add_repo(repo_id, private=private)
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def _do_validate_yaml(self) -> None:
        content = json.loads(self._body()).get("content", "")
        errors = _card_errors(content)
        self._send(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})

    def _do_preupload(self, repo: str, rev: str) -> None:
        body = json.loads(self._body())
        found = self._repo(repo, write=True)
        if found is None or (commit := self._commit_at(found, rev)) is None:
            return
        files = [{
            "path": item["path"], "uploadMode": "regular", "shouldIgnore": False,
            "oid": git_blob_id(commit.files[item["path"]]) if item["path"] in commit.files else None,
        } for item in body["files"]]
        self._send(200, {"files": files, "commitOid": commit.oid})

    def _do_commit(self, repo: str, rev: str) -> None:
        body = self._body()
        found = self._repo(repo, write=True)
        if found is None:
            return
        fault = self.server.next_commit_fault()
        if fault == "500":
            self._error(500, "Internal Error - We're working hard to fix this as soon as possible!")
            return
        if fault == "drop":
            self.close_connection = True
            return
        if fault == "hang":
            self.server.stopping.wait()
            self.close_connection = True
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            self._error(400, "the first line of a commit must be its header")
            return
        header = lines[0]["value"]
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        with self.server.lock:
            head = found.head
            if header.get("parentCommit") and not head.oid.startswith(header["parentCommit"]):
                self._error(412, "A commit has happened since. Please refresh and try again.")
                return
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file" and value.get("encoding") == "base64":
                    added[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    if value["path"] not in head.files:
                        self._error(404, "A file with this name doesn't exist", "EntryNotFound")
                        return
                    deleted.append(value["path"])
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    deleted.extend(p for p in head.files if p.startswith(prefix))
                else:
                    self._error(400, f"unsupported commit line {key!r} (this fake only takes regular files)")
                    return
            commit = self.server.commit(found, header.get("summary", ""), added, deleted)
        if fault == "lost":
            self.close_connection = True
            return
        self._send(200, {"success": True, "commitOid": commit.oid, "pullRequestUrl": None,
                         "commitUrl": f"{self.server.url}/datasets/{repo}/commit/{commit.oid}", "hookOutput": ""})

    # -- read side -----------------------------------------------------------------------------

    def _do_info(self, repo: str, rev: str | None = None) -> None:
        found = self._repo(repo)
        if found is None or (commit := self._commit_at(found, rev or "main")) is None:
            return
        self._send(200, {
            "_id": hashlib.md5(repo.encode()).hexdigest()[:24], "id": repo, "author": repo.split("/")[0],
            "sha": commit.oid, "private": found.private, "gated": False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": [], "cardData": _front_matter(commit.files.get("README.md", b"")),
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            "lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2025-01-01T00:00:00.000Z",
        })

    def _do_tree(self, repo: str, rev: str, path: str | None = None) -> None:
        found = self._repo(repo)
        if found is None or (commit := self._commit_at(found, rev)) is None:
            return
        prefix = (path or "").strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        base = f"{prefix}/" if prefix else ""
        if prefix and not any(p.startswith(base) for p in commit.files):
            self._error(404, f"{prefix} does not exist at {rev}", "EntryNotFound")
            return
        entries: dict[str, dict] = {}
        for file, data in sorted(commit.files.items()):
            if not file.startswith(base):
                continue
            rest = file[len(base):].split("/")
            for depth in range(1, len(rest)):  # the folders on the way
                folder = base + "/".join(rest[:depth])
                if recursive or depth == 1:
                    entries.setdefault(folder, _folder_entry(folder, commit))
            if recursive or len(rest) == 1:
                entries[file] = _file_entry(file, data)
        self._send(200, list(entries.values()))

    def _do_paths_info(self, repo: str, rev: str) -> None:
        form = parse_qs(self._body().decode())
        found = self._repo(repo)
        if found is None or (commit := self._commit_at(found, rev)) is None:
            return
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                out.append(_file_entry(path, commit.files[path]))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(_folder_entry(path, commit))
        self._send(200, out)

    def _do_resolve(self, repo: str, rev: str, path: str) -> None:
        found = self._repo(repo)
        if found is None or (commit := self._commit_at(found, rev)) is None:
            return
        if path not in commit.files:
            self._error(404, "Entry not found", "EntryNotFound")
            return
        data = commit.files[path]
        headers = {"ETag": f'"{git_blob_id(data)}"', "X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                self._send(416, raw=b"", headers={**headers, "Content-Range": f"bytes */{len(data)}"})
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._send(206, raw=data[start:end + 1], headers=headers)
            return
        self._send(200, raw=data, headers=headers)


def _file_entry(path: str, data: bytes) -> dict:
    return {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}


def _folder_entry(path: str, commit: Commit) -> dict:
    inside = "".join(sorted(p for p in commit.files if p.startswith(path + "/")))
    return {"type": "directory", "oid": hashlib.sha1(inside.encode()).hexdigest(), "size": 0, "path": path}


def _front_matter(readme: bytes) -> dict | None:
    match = re.match(r"^---\n(.*?)\n---\n", readme.decode("utf-8", "replace"), re.DOTALL)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _card_errors(content: str) -> list[str]:
    """The checks the Hub applies to a dataset card's metadata, reduced to what this project writes."""
    match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
    if not match:
        return []
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        return [f"YAML error: {str(exc).splitlines()[0]}"]
    if not isinstance(meta, dict):
        return ["metadata must be a mapping"]
    errors = [f'"size_categories" has unknown value {v!r}' for v in meta.get("size_categories", [])
              if v not in SIZE_CATEGORIES]
    for config in meta.get("configs", []) or []:
        if not isinstance(config, dict) or "config_name" not in config:
            errors.append('"configs" items need a "config_name"')
            continue
        for item in config.get("data_files", []) or []:
            if not isinstance(item, dict) or not {"split", "path"} <= item.keys():
                errors.append('"data_files" items need "split" and "path"')
    return errors


if __name__ == "__main__":  # manual poking: python tests/fakes/hub_server.py
    server = FakeHubServer()
    print("PORT", server.server_address[1], "TOKEN", TOKEN, flush=True)
    server.serve_forever()
