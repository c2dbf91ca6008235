"""Opening hours: when the installation runs by itself, and when it rests on a closed screen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from installation.settings import ShowSettings

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Hours:
    """Opening hours: days of the week and a daily span, which may run past midnight."""

    opens: time
    closes: time
    days: frozenset[int]
    """Weekdays, Monday 0."""
    always: bool = False

    @classmethod
    def from_settings(cls, show: ShowSettings) -> Hours:
        return cls(
            opens=time.fromisoformat(show.opens), closes=time.fromisoformat(show.closes),
            days=frozenset(DAYS.index(day) for day in show.days), always=show.always_open,
        )  # fmt: skip

    def is_open(self, local: datetime) -> bool:
        if self.always:
            return True
        clock, day = local.time(), local.weekday()
        if self.opens < self.closes:
            return day in self.days and self.opens <= clock < self.closes
        if self.opens == self.closes:  # round the clock on the days given
            return day in self.days
        # Past midnight: the small hours belong to the night that opened the day before.
        return (clock >= self.opens and day in self.days) or (clock < self.closes and (day - 1) % 7 in self.days)

    def describe(self) -> str:
        if self.always:
            return "always open"
        days = "every day" if len(self.days) == 7 else ", ".join(DAYS[d] for d in sorted(self.days))
        return f"open {self.opens:%H:%M}-{self.closes:%H:%M}, {days}"


def local_now(timezone: str) -> datetime:
    """The wall-clock time the opening hours are read in."""
    if timezone == "local":
        return datetime.now().astimezone()
    return datetime.now(ZoneInfo(timezone))
