"""The judge: LLM grading through the factory engine, statistics, score report.

The Python API (judge/api.py): `judge.grade(run, mode=..., judge_model=...)`, `judge.grade_async`,
`judge.curate(run, judge_model=...)` (grade
the training data, keep the best as a new run), `judge.report(run)` (the whole report: index.html, summary, charts), `judge.view(run)` (the data
page: report/data.html, shown inline in a notebook) and `judge.judgments(run)` (a polars DataFrame).
They load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judge.api import (
        CurateResult,
        DataPage,
        GradeResult,
        OverviewError,
        ReportResult,
        curate,
        grade,
        grade_async,
        judgments,
        report,
        view,
    )
    from judge.errors import CurateError, ViewerError
    from judge.grading.settings import GradeError, JudgeSettings

__all__ = ["CurateError", "CurateResult", "DataPage", "GradeError", "GradeResult", "JudgeSettings", "OverviewError",
           "ReportResult", "ViewerError", "curate", "grade", "grade_async", "judgments", "report", "view"]


def __getattr__(name: str) -> Any:
    if name in ("GradeError", "JudgeSettings"):
        from judge.grading import settings as grade_settings

        return getattr(grade_settings, name)
    if name in ("CurateError", "ViewerError"):
        from judge import errors

        return getattr(errors, name)
    if name in __all__:
        from judge import api

        return getattr(api, name)
    raise AttributeError(f"module 'judge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})  # the API's names for tab completion, before their first use
