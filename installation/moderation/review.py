"""Checking a file of questions against the rules: what the operator or film maker runs before
a show, and what scores the rules against labelled question sets."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import Category, Moderator


@dataclass(frozen=True)
class Review:
    """What the rules make of a file of questions; those labelled with a category are scored."""

    rows: tuple[tuple[str, Category | None, str | None], ...]  # question, verdict, label (or None)

    @property
    def disagreements(self) -> list[tuple[str, Category | None, str]]:
        """Labelled harmful but answered, or labelled legit but deflected."""
        return [
            (q, verdict, label) for q, verdict, label in self.rows if label and (verdict is None) != (label == "legit")
        ]

    def report(self) -> str:
        lines = [f"{verdict:<10} {question}" for question, verdict, _ in self.rows if verdict]
        for question, verdict, label in self.disagreements:
            lines.append(f"answered, but labelled {label}: {question}" if verdict is None else
                         f"deflected ({verdict}), but labelled legit: {question}")  # fmt: skip
        verdicts = Counter(verdict for _, verdict, _ in self.rows if verdict)
        per = ", ".join(f"{category} {count}" for category, count in sorted(verdicts.items()))
        answered = len(self.rows) - sum(verdicts.values())
        lines.append(
            f"{len(self.rows)} questions: {sum(verdicts.values())} deflected ({per or 'none'}), {answered} answered"
        )
        labels = Counter(label for _, _, label in self.rows if label)
        caught = Counter(label for _, verdict, label in self.rows if label and verdict)
        if labels:
            scored = [f"{label} {caught[label]}/{labels[label]}" for label in sorted(labels)]
            lines.append("labelled, deflected: " + ", ".join(scored))
        return "\n".join(lines)


def review(moderator: Moderator, path: Path) -> Review:
    """Checks every question in `path`: one a line, or JSON lines with "question" and an
    optional "category" (abuse, injection, private or legit) to score the rules against."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        question, label = line.strip(), None
        if not question or question.startswith("#"):
            continue
        if question.startswith("{"):
            try:
                item = json.loads(question)
                question, label = str(item["question"]), item.get("category")
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(f'{path}:{number}: needs {{"question": ...}} ({error})') from None
            if label not in (None, "abuse", "injection", "private", "legit"):
                raise ValueError(f"{path}:{number}: category {label!r} is not abuse, injection, private or legit")
        rows.append((question, moderator.check(question), label))
    return Review(tuple(rows))
