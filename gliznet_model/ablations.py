"""Ablations as in the GliZNet paper: train one model per variant on the same data with
everything else equal, evaluate them all the same way, and put the numbers in one table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from .evaluation import run_evaluation
from .training import TrainConfig, train


class AblationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = Field(default_factory=dict, description="train settings every run shares")
    runs: dict[str, dict[str, Any]] = Field(..., min_length=1, description="run name -> settings it changes")
    benchmarks: list[str] = Field(default_factory=list, description="benchmarks scored besides held-out data")
    limit: int | None = Field(None, ge=1, description="texts per evaluation set")


def run_ablations(data: str, config: AblationConfig, output_dir: Path,
                  on_run: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every run; results carry the run name in ``system``."""
    results = []
    for name, changes in config.runs.items():
        if on_run:
            on_run(name)
        settings = TrainConfig.model_validate(config.base | changes | {"data": data, "output_dir": output_dir / name})
        train(settings)
        for result in run_evaluation(str(output_dir / name), [data], config.benchmarks, [], limit=config.limit,
                                     seed=settings.seed):
            results.append(result | {"system": name})
    return sorted(results, key=lambda r: r["dataset"])
