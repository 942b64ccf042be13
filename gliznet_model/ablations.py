"""Ablations as in the GliZNet paper: train one model per variant on the same data with everything else equal,
evaluate them all the same way, and put the numbers in one table beside the embedding baseline and the untrained
model of every distinct architecture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .benchmarks import BENCHMARK_NAMES
from .evaluation import run_evaluation
from .training import TrainConfig, train

BASELINE_CHOICES = ("embedding", "untrained")


class AblationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = Field(default_factory=dict, description="train settings every run shares")
    runs: dict[str, dict[str, Any]] = Field(..., min_length=1, description="run name -> settings it changes")
    benchmarks: list[str] = Field(default_factory=list, description="benchmarks scored besides held-out data")
    baselines: list[str] = Field(default_factory=lambda: list(BASELINE_CHOICES),
                                 description="embedding and/or untrained rows beside the runs")
    limit: int | None = Field(None, ge=1, description="texts per evaluation set")

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, names: list[str]) -> list[str]:
        return _known(names, BENCHMARK_NAMES, "benchmark")

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, names: list[str]) -> list[str]:
        return _known(names, BASELINE_CHOICES, "baseline")


def _known(names: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    """Names checked before the first run trains, not after."""
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"unknown {what}(s) {', '.join(unknown)} (known: {', '.join(allowed)})")
    return names


def run_ablations(data: str, config: AblationConfig, output_dir: Path,
                  on_run: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every run; results carry the run name in ``system``."""
    # Every run's settings are checked before the first one trains.
    settings = {name: TrainConfig.model_validate(config.base | changes | {"data": data, "output_dir": output_dir / name})
                for name, changes in config.runs.items()}
    results: list[dict[str, Any]] = []
    architectures: dict[str, str] = {}  # untrained-model key -> the first run that has it
    for name, run_settings in settings.items():
        if on_run:
            on_run(name)
        train(run_settings)
        for result in run_evaluation(str(output_dir / name), [data], config.benchmarks, [], limit=config.limit,
                                     seed=run_settings.seed):
            results.append(result | {"system": name})
        from .modeling import GliZNetForSequenceClassification  # loaded by training already

        choices = GliZNetForSequenceClassification.config_class.from_pretrained(output_dir / name).modelling_choices()
        untrained_key = json.dumps({k: v for k, v in choices.items() if k not in ("losses", "dropout")},
                                   sort_keys=True)
        architectures.setdefault(untrained_key, name)
    first = next(iter(settings))
    if "embedding" in config.baselines:
        if on_run:
            on_run("embedding baseline")
        results += run_evaluation(str(output_dir / first), [data], config.benchmarks, ["embedding"],
                                  limit=config.limit, seed=settings[first].seed, score_model=False)
    if "untrained" in config.baselines:
        for name in architectures.values():
            if on_run:
                on_run(f"untrained twin of {name}")
            for result in run_evaluation(str(output_dir / name), [data], config.benchmarks, ["untrained"],
                                         limit=config.limit, seed=settings[name].seed, score_model=False):
                label = "untrained" if len(architectures) == 1 else f"untrained ({name})"
                results.append(result | {"system": label})
    return sorted(results, key=lambda r: r["dataset"])
