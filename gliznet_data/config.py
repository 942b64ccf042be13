"""Settings: CLI flags override a YAML config file, which overrides the models' defaults.

A pipeline YAML may hold one section per command (``generate:``, ``push:``, ...); a file
without sections is taken as the section itself. Secrets are never read from it: the services'
SDKs read their keys from the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import UserError

M = TypeVar("M", bound=BaseModel)


def read_section(path: Path | None, section: str) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"config {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping")
    body = data.get(section, data)
    if not isinstance(body, dict):
        raise UserError(f"config {path}: section {section!r} must be a mapping")
    return body


def build(model: type[M], path: Path | None, section: str, flags: dict[str, Any]) -> M:
    """The settings model from the config file's section with the given flags on top (None = unset)."""
    values = read_section(path, section) | {k: v for k, v in flags.items() if v is not None}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or section
        raise UserError(f"invalid setting {where}: {err['msg']}") from None
