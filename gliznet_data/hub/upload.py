"""The upload: the only module that talks to the Hub.

It compares the built folder with the repo's head (git blob ids for regular files, SHA-256 for LFS
files) and commits only what differs, deleting stale files under ``data/`` in the same commit, so
pushing the same data twice makes no second commit. Every request has a timeout (``PushConfig.timeout``):
a Hub that accepts connections and never answers ends the push with one line instead of hanging it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ..errors import UserError
from .folder import Built, build_folder, summary
from .settings import PushConfig, Step, quiet

# Status codes worth another attempt: timeouts, rate limits, server trouble, and 412 (someone committed
# between our look at the head and our commit: the next attempt plans against the new head).
_RETRY_STATUS = {408, 412, 429, 500, 502, 503, 504}


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` read now, as huggingface_hub reads it at import; so an in-process caller that sets it
    late (a test, a notebook) gets the same answer as a fresh process."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def use_timeout(seconds: float) -> None:
    """Make every request huggingface_hub sends from this process give up after ``seconds`` without
    a connection or an answer.

    Its shared HTTP client is built without a timeout, and HfApi's calls (whoami, create_repo,
    preupload, commit, tree listings) use that client's default; ``HF_HUB_ETAG_TIMEOUT`` and
    ``HF_HUB_DOWNLOAD_TIMEOUT`` only reach downloads. ``set_client_factory`` is the library's
    supported hook for configuring that client: the factory keeps the library's own client (and its
    request hooks: offline mode, request ids) and sets its timeout."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    def factory() -> Any:
        client = _http.default_client_factory()
        client.timeout = seconds
        return client

    set_client_factory(factory)


def _first_line(exc: BaseException, secret: str | None) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    text = text.rstrip(".")
    return text.replace(secret, "***") if secret else text


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _is_network_error(exc: BaseException) -> bool:
    """Connection trouble from whichever HTTP stack huggingface_hub runs on (httpx, httpx2 or requests)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    network = {"TransportError", "ConnectionError", "Timeout", "TimeoutException", "ChunkedEncodingError"}
    return bool(_names(exc) & network) and _status(exc) is None


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or bool(_names(exc) & {"Timeout", "TimeoutException"})


def _from_the_hub(exc: BaseException) -> bool:
    """Failures that the user or the network can fix (a traceback is kept for anything else: a bug)."""
    return _status(exc) is not None or _is_network_error(exc) or isinstance(exc, (ValueError, OSError))


def _transient(exc: BaseException) -> bool:
    return _is_network_error(exc) or _status(exc) in _RETRY_STATUS


def _hub_error(exc: BaseException, doing: str, settings: PushConfig, endpoint: str, token: str | None) -> UserError:
    """One line that says what went wrong and what to do; never the token."""
    repo_id, status = settings.repo_id, _status(exc)
    if status == 401:
        return UserError(f"the Hub at {endpoint} rejected the token (401) while {doing}; "
                         "set HF_TOKEN to a valid write token or run `hf auth login`")
    if status == 403:
        return UserError(f"no write access to dataset {repo_id} (403) while {doing}: it belongs to another user or "
                         "organisation, or the token cannot write there")
    if status == 404:
        return UserError(f"dataset {repo_id} not found at {endpoint} while {doing} (404)")
    if _timed_out(exc):
        return UserError(f"the Hub at {endpoint} did not answer within {settings.timeout:g}s while {doing} "
                         "(push: timeout sets the limit)")
    if _is_network_error(exc):
        return UserError(f"cannot reach the Hub at {endpoint} while {doing}: {_first_line(exc, token)}")
    where = f"{status} " if status else ""
    return UserError(f"the Hub answered {where}while {doing}: {_first_line(exc, token)}")


def _token() -> str:
    from huggingface_hub import get_token

    try:
        token = get_token()
    except Exception as exc:  # e.g. an OIDC token exchange that failed
        raise UserError(f"cannot get a Hugging Face token: {_first_line(exc, None)}") from None
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)")
    return token


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _unchanged(remote: Any, data: bytes) -> bool:
    if remote is None:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == hashlib.sha256(data).hexdigest()
    return remote.blob_id == _git_blob_id(data)


def _commit_once(api: Any, settings: PushConfig, built: Built) -> dict[str, Any]:
    """Plan against the current head and commit the difference; safe to repeat after any failure."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.hf_api import RepoFile

    repo_id = settings.repo_id
    head = api.dataset_info(repo_id, revision="main", timeout=settings.timeout).sha
    remote = {entry.path: entry for entry in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True,
                                                                 revision=head or "main")
              if isinstance(entry, RepoFile)}
    adds = [rel for rel in built.files if not _unchanged(remote.get(rel), (built.folder / rel).read_bytes())]
    deletes = sorted(p for p in remote if p.startswith("data/") and p not in built.files)
    if not adds and not deletes:
        return {"commit": head, "uploaded": [], "deleted": []}
    operations = [CommitOperationDelete(path_in_repo=p) for p in deletes] + [
        CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(built.folder / rel)) for rel in adds]
    counts = ", ".join(f"{name} {frame.height:,}" for name, frame in built.splits.frames.items())
    info = api.create_commit(
        repo_id, operations, repo_type="dataset", parent_commit=head,
        commit_message=settings.commit_message or f"gliznet-data push: {built.rows:,} records ({counts})",
        commit_description=f"{len(adds)} file(s) written, {len(deletes)} deleted by gliznet-data push.",
    )
    return {"commit": info.oid, "uploaded": adds, "deleted": deletes}


def upload(settings: PushConfig, path: Path, on_step: Step = quiet) -> dict[str, Any]:
    """Check the token, build the folder, create the repo if needed and commit what changed."""
    from huggingface_hub import HfApi

    if not settings.repo_id:
        raise UserError("--repo-id OWNER/NAME is required to push (or use --dry-run / --to-folder)")
    if not path.exists():
        raise UserError(f"{path} does not exist")
    repo_id, endpoint = settings.repo_id, hub_endpoint()
    token = _token()
    use_timeout(settings.timeout)
    api = HfApi(endpoint=endpoint, token=token, library_name="gliznet")
    on_step(f"checking the token with {endpoint}")
    try:
        me = api.whoami()
    except Exception as exc:
        if not _from_the_hub(exc):
            raise
        raise _hub_error(exc, "checking the token", settings, endpoint, token) from None
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise UserError("the Hugging Face token is read-only; pushing needs a token with write access")

    with tempfile.TemporaryDirectory(prefix="gliznet-push-") as tmp:
        built = build_folder(settings, path, Path(tmp), on_step)
        raw = token.encode()
        for rel in built.files:  # belt and braces: the folder is built from data, never from the environment
            if raw in (built.folder / rel).read_bytes():
                raise UserError(f"refusing to upload: {rel} contains the Hugging Face token")
        on_step(f"creating or opening dataset {repo_id}")
        try:
            api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=True if settings.private else None)
            before = api.dataset_info(repo_id, revision="main", timeout=settings.timeout)
        except Exception as exc:
            if not _from_the_hub(exc):
                raise
            raise _hub_error(exc, f"creating {repo_id}", settings, endpoint, token) from None

        attempts = 0
        retrying = Retrying(
            stop=stop_after_attempt(settings.retries),
            wait=wait_exponential(multiplier=settings.retry_wait, max=max(settings.retry_wait, 60.0)),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    on_step(f"uploading to {repo_id}" + (f" (attempt {attempts})" if attempts > 1 else ""))
                    result = _commit_once(api, settings, built)
        except Exception as exc:
            if not _from_the_hub(exc):
                raise
            reason = _hub_error(exc, "committing", settings, endpoint, token)
            if _transient(exc):
                raise UserError(f"upload to {repo_id} failed after {attempts} attempt(s): {reason}; no local file "
                                "was changed and no commit was confirmed; run the same command again") from None
            raise reason from None
        result = summary(
            settings, built, dry_run=False, endpoint=endpoint, url=f"{endpoint}/datasets/{repo_id}",
            private=before.private, previous_commit=before.sha, commit=result["commit"],
            changed=result["commit"] != before.sha, uploaded=result["uploaded"], deleted=result["deleted"],
            attempts=attempts,
        )
        if settings.private and not before.private:
            result["notes"].append(f"{repo_id} already existed as a public repo; --private only applies to a "
                                   "repo this push creates")
        return result
