"""Errors a user can cause. The CLI prints these as one line, without a traceback."""
from __future__ import annotations

import difflib
from typing import Iterable, Sequence


class GradpathError(ValueError):
    """A mistake in user input (name, argument, file). Printed as one line by the CLI."""


class UnknownModelError(GradpathError, KeyError):
    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0] if self.args else ""


class UnknownOptionError(GradpathError):
    pass


class DataError(GradpathError):
    """Bad dataset content: names the file and field."""


class TrainingDiverged(GradpathError):
    """The training loss became non-finite. A caller that studies training (``reproduce``: the paper says a deep
    plain VoVNet "fails to converge") records it as a result instead of failing; ``checkpoint`` holds the last
    good state, ``epoch`` and ``batch`` (1-based) say where it happened."""

    def __init__(self, message: str, *, epoch: int, batch: int, checkpoint: str) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.checkpoint = epoch, batch, checkpoint


class GradpathWarning(UserWarning):
    """Input gradpath can still use after adjusting it (e.g. more loader workers than cores, clamped).
    The CLI prints these as one line, ``gradpath CMD: warning: ...``."""


def suggest(word: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' Did you mean: a, b?' for the closest choices, or '' when nothing is close."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not close:
        close = [c for c in choices if word.lower() in c.lower()][:n]
    return f" Did you mean: {', '.join(close)}?" if close else ""


def check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    """Raise ``GradpathError("NAME must be one of (...), got 'x'. Did you mean: ...?")`` unless ``value`` is one of
    ``choices``: every option with a fixed set of values fails with the same kind of line."""
    if value not in choices:
        raise GradpathError(f"{name} must be one of {tuple(choices)}, got {value!r}.{suggest(str(value), choices)}")
