"""The failure budget of a live run: stop paying for replies that yield nothing.

A request fails when its reply yields no valid record (unparseable, all rejected, all duplicates).
A run stops once ``max_consecutive`` requests in a row failed (a broken model, prompt or setting), or
once ``max_share`` of the last ``window`` requests failed (a service that mostly answers garbage).
"""

from __future__ import annotations

from collections import Counter, deque

from .errors import UserError


class FailureBudgetSpent(UserError):
    """The run stopped itself: its finished work is saved and the same command resumes it."""

    exit_code = 3


class FailureBudget:
    def __init__(self, max_consecutive: int, window: int, max_share: float):
        self.max_consecutive = max_consecutive
        self.window = window
        self.max_share = max_share
        self.consecutive = 0
        self.recent: deque[bool] = deque(maxlen=window)  # True: the request failed
        self.spent = False

    def record(self, records_kept: int, rejects: Counter[str] | None = None) -> None:
        """Count one finished request; raise ``FailureBudgetSpent`` once the budget is spent.
        ``rejects`` (the run's rejects by reason) only make the message say what went wrong."""
        if self.spent:
            return  # requests that were in flight when it ran out: the first report stands
        failed = records_kept == 0
        self.consecutive = self.consecutive + 1 if failed else 0
        self.recent.append(failed)
        if self.consecutive >= self.max_consecutive:
            why = f"{self.consecutive} requests in a row yielded no valid record"
        elif len(self.recent) == self.window and sum(self.recent) >= self.max_share * self.window:
            why = f"{sum(self.recent)} of the last {self.window} requests yielded no valid record"
        else:
            return
        self.spent = True
        top = ", ".join(f"{reason} {count:,}" for reason, count in (rejects or Counter()).most_common(3))
        raise FailureBudgetSpent(
            f"stopped: {why}" + (f" (rejects so far: {top})" if top else "")
            + "; finished work is saved: fix the cause (model, prompts, json_mode, limits) and run the same "
              "command again, or raise max_consecutive_failures / max_failure_share")
