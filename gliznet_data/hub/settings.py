"""Everything ``gliznet-data push`` can be told (flags or the config's ``push:`` section)."""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")

Step = Callable[[str], None]  # told what the push is doing, for the status line


def quiet(_: str) -> None:
    pass


class PushConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo_id: str | None = Field(None, description="OWNER/NAME of the dataset repo")
    private: bool = False
    split_seed: int = 0
    validation: float = Field(0.1, ge=0, lt=1, description="fraction of the non-test records kept for validation")
    unseen_labels: float = Field(0.0, ge=0, lt=1, description="about this share of the records go to a zero-shot "
                                 "test split, by holding out labels (see splits.py)")
    license: str = "apache-2.0"
    language: list[str] = Field(default_factory=lambda: ["en"])
    pretty_name: str | None = None
    rows_per_file: int = Field(100_000, ge=1, description="rows per Parquet file of a split")
    commit_message: str | None = None
    retries: int = Field(5, ge=1, description="attempts at the upload before giving up")
    retry_wait: float = Field(2.0, ge=0, description="seconds before the second attempt; doubles each time")
    timeout: float = Field(60.0, gt=0, description="seconds to wait for the Hub to connect or to answer, per request")

    @field_validator("repo_id")
    @classmethod
    def _check_repo_id(cls, value: str | None) -> str | None:
        if value is not None and not _REPO_ID.match(value):
            raise ValueError(f"must look like OWNER/NAME, got {value!r}")
        return value
