"""The judge's exception tree. `python -m judge` prints any of these as one line and exits 2.

    schemas.UserError
      AnswerError            answers from an endpoint that cannot be made as asked (schemas'; the trainer's too)
      JudgeError
        GradeError           an input or a setting of a grading to fix; nothing was sent
        PromptError          a grading prompt that cannot be built (a template, turn, answer or reference)
        TrainingReportError  a metrics file the report cannot read
        OverviewError        a run the overview cannot report on
        ViewerError          a run the data page cannot show (nothing to show, a line to fix)
        CurateError          a curation to fix (no examples, a score file, a selection folder); nothing was lost

The factory's errors (factory.errors: a refused key, a budget without a price, ...) reach the judge's
commands through the engine and are printed the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from factory import FatalAPIError
from schemas import AnswerError, UserError


class JudgeError(UserError):
    """A problem the user can fix; the message says what to change."""


class GradeError(JudgeError):
    """An input or a setting the user must fix; nothing was sent."""


class PromptError(JudgeError):
    """A grading prompt that cannot be built: a missing template, turn, answer or reference."""


class TrainingReportError(JudgeError):
    """A metrics file the report cannot read; the message says what to do."""


class OverviewError(JudgeError):
    """A run the overview cannot report on; the message says what to do."""


class ViewerError(JudgeError):
    """A run the data page cannot show: no run, nothing in it yet, a line that does not read."""


class CurateError(JudgeError):
    """A curation that cannot go on as asked: no examples, a score line to fix, a selection folder
    that holds another selection. Nothing graded or paid for is lost."""


@contextmanager
def structured_hint(structured: bool) -> Iterator[None]:
    """A grading asked for json_schema replies and the endpoint refused them (HTTP 400): say how to do without."""
    try:
        yield
    except FatalAPIError as e:
        if not (structured and e.status == 400):
            raise
        raise FatalAPIError(f"{e} (if the endpoint does not take response_format json_schema, rerun with "
                            "--structured no)", status=e.status, code=e.code) from None


__all__ = ["AnswerError", "CurateError", "GradeError", "JudgeError", "OverviewError", "PromptError", "TrainingReportError",
           "UserError", "ViewerError", "structured_hint"]
