"""The show's state machine, its cue list and its opening hours, without a bus or a clock."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

import pytest

from installation.messages import COMMANDS, BotReply, ShowCommand
from nodes.show.cues import CueList, CueListError, load_cues
from nodes.show.hours import Hours
from nodes.show.machine import ShowMachine

ROOT = Path(__file__).parents[2]
MONDAY_NOON = datetime(2025, 6, 2, 12, 0)
ALWAYS = Hours(opens=time(0), closes=time(0), days=frozenset(range(7)), always=True)
THANKS = ("Thank you. Next, please.", "Thanks, that was lovely.")
CUES = {
    "loop": True,
    "cue": [
        {"id": "preshow", "kind": "preshow", "duration_s": 30},
        {"id": "segment-1", "kind": "screening", "media": "segment-1.mp4", "duration_s": 90},
        {"id": "interview-1", "kind": "interview", "minutes": 2, "questions": 2, "silence_s": 20, "answer_s": 30},
        {"id": "credits", "kind": "credits", "duration_s": 10},
    ],
}


def machine(cues: dict = CUES, *, hours: Hours = ALWAYS, barge_in: str = "off", guard_s: float = 0.5) -> ShowMachine:
    return ShowMachine(
        CueList.model_validate(cues), hours=hours, floor_source="kiosk", go_guard_s=guard_s, barge_in=barge_in,
        persona="ines-marlow", thanks=THANKS,
    )  # fmt: skip


def at(show: ShowMachine, cue_id: str | None, now: float = 0.0) -> ShowMachine:
    """`show` moved to `cue_id` (None: left closed) by GO presses, each past the guard."""
    show.tick(now, MONDAY_NOON)
    if show.index is None and cue_id is not None:
        show.command("go", now, MONDAY_NOON)
    while cue_id is not None and show.cue.id != cue_id:
        show.command("next", now, MONDAY_NOON)
    return show


def interview(now: float = 0.0, **options) -> ShowMachine:
    return at(machine(**options), "interview-1", now)


def skips(step) -> list[str | None]:
    return [out.turn_id for out in step.publish if isinstance(out.payload, ShowCommand)]


# -- the running order ------------------------------------------------------------------


def test_go_starts_the_show_and_each_go_moves_one_cue_then_the_show_starts_again():
    show = machine(hours=Hours(opens=time(10), closes=time(18), days=frozenset(range(7))))
    show._open = True  # it opened earlier and has since finished: GO starts it again
    seen = []
    for press in range(5):
        step = show.command("go", press * 1.0, MONDAY_NOON)
        assert step.accepted and step.state is not None
        seen.append((step.state.phase, step.state.cue, step.state.media))
    assert seen == [
        ("preshow", "preshow", None),
        ("screening", "segment-1", "segment-1.mp4"),
        ("interview", "interview-1", None),
        ("credits", "credits", None),
        ("preshow", "preshow", None),
    ]


def test_a_second_go_within_the_guard_is_refused_and_never_skips_a_cue():
    show = at(machine(), "preshow")
    first = show.command("go", 10.0, MONDAY_NOON)
    double = show.command("go", 10.3, MONDAY_NOON)
    assert first.accepted and show.cue.id == "segment-1"
    assert double.accepted is False and "second GO within 500 ms" in double.reason
    assert double.state is None and show.cue.id == "segment-1"
    assert show.command("go", 10.6, MONDAY_NOON).accepted and show.cue.id == "interview-1"


def _in(where: str) -> ShowMachine:
    if where == "closed":
        return at(machine(hours=Hours(opens=time(10), closes=time(11), days=frozenset(range(7)))), None)
    if where == "speaking":
        show = interview()
        show.speaking_started("t1", "tts", 1.0)
        return show
    if where == "paused":
        show = at(machine(), "segment-1")
        show.command("pause", 1.0, MONDAY_NOON)
        return show
    if where == "muted":
        show = interview()
        show.command("mute", 1.0, MONDAY_NOON)
        return show
    return at(machine(), {"preshow": "preshow", "screening": "segment-1", "interview": "interview-1"}[where])


REFUSED = {
    ("closed", "go"): "outside opening hours",
    ("closed", "next"): "the show is closed",
    ("closed", "back"): "the show is closed",
    ("closed", "pause"): "nothing to pause",
    ("closed", "resume"): "not paused",
    ("closed", "unmute"): "not muted",
    ("closed", "skip"): "not speaking",
    ("preshow", "back"): "first cue",
    ("preshow", "resume"): "not paused",
    ("preshow", "unmute"): "not muted",
    ("preshow", "skip"): "not speaking",
    ("screening", "resume"): "not paused",
    ("screening", "unmute"): "not muted",
    ("screening", "skip"): "not speaking",
    ("interview", "resume"): "not paused",
    ("interview", "unmute"): "not muted",
    ("interview", "skip"): "not speaking",
    ("speaking", "resume"): "not paused",
    ("speaking", "unmute"): "not muted",
    ("paused", "pause"): "already paused",
    ("paused", "unmute"): "not muted",
    ("paused", "skip"): "not speaking",
    ("muted", "mute"): "already muted",
    ("muted", "resume"): "not paused",
    ("muted", "skip"): "not speaking",
}


@pytest.mark.parametrize("where", ["closed", "preshow", "screening", "interview", "speaking", "paused", "muted"])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_in_every_phase_is_carried_out_or_refused_with_a_reason_changing_nothing(where, command):
    show = _in(where)
    before = show.state(5.0), show.snapshot(5.0)
    step = show.command(command, 5.0, MONDAY_NOON)
    refused = REFUSED.get((where, command))
    if refused:
        assert step.accepted is False and refused in step.reason
        assert step.state is None and step.publish == []
        assert (show.state(5.0), show.snapshot(5.0)) == before
    else:
        assert step.accepted is True and step.reason == ""
        if command not in ("skip",):
            assert step.state is not None and step.state != before[0], "an accepted command shows"


def test_back_returns_to_the_previous_cue_and_restarts_its_clock():
    show = at(machine(), "interview-1", now=0.0)
    step = show.command("back", 40.0, MONDAY_NOON)
    assert step.state.cue == "segment-1" and step.state.ends_in_s == 90.0


def test_panic_blacks_out_and_mutes_at_once_and_closes_the_floor():
    show = interview()
    assert show.state(1.0).floor == "kiosk"
    step = show.command("panic", 1.0, MONDAY_NOON)
    assert step.accepted and step.state.blackout and step.state.muted and step.state.floor is None
    assert show.command("blackout", 2.0, MONDAY_NOON).state.blackout is False  # blackout toggles
    assert show.command("unmute", 3.0, MONDAY_NOON).state.floor == "kiosk"


def test_a_screening_ends_after_its_duration_and_the_next_cue_follows_by_itself():
    show = at(machine(), "segment-1", now=100.0)
    assert show.tick(189.9, MONDAY_NOON).state is None
    step = show.tick(190.0, MONDAY_NOON)
    assert step.state.phase == "interview" and step.state.floor == "kiosk" and step.state.questions_left == 2


def test_a_cue_that_waits_for_go_holds_when_its_time_is_up():
    cues = {"cue": [dict(CUES["cue"][1], wait_for_go=True), CUES["cue"][3]]}
    show = at(machine(cues), "segment-1", now=0.0)
    step = show.tick(91.0, MONDAY_NOON)
    assert step.state.cue == "segment-1" and step.state.ends_in_s is None
    assert show.tick(500.0, MONDAY_NOON).state is None
    assert show.command("go", 501.0, MONDAY_NOON).state.cue == "credits"


def test_without_loop_the_show_closes_after_its_last_cue():
    show = at(machine({**CUES, "loop": False}), "credits", now=0.0)
    assert show.tick(10.0, MONDAY_NOON).state.phase == "closed"


def test_pause_freezes_the_cue_clock_and_resume_carries_on_from_there():
    show = at(machine(), "segment-1", now=0.0)
    assert show.command("pause", 10.0, MONDAY_NOON).state.ends_in_s == 80.0
    assert show.tick(500.0, MONDAY_NOON).state is None and show.cue.id == "segment-1"
    assert show.state(500.0).ends_in_s == 80.0
    show.command("resume", 600.0, MONDAY_NOON)
    assert show.tick(679.0, MONDAY_NOON).state is None
    assert show.tick(680.0, MONDAY_NOON).state.cue == "interview-1"


# -- turn-taking --------------------------------------------------------------------------


def test_the_floor_closes_while_the_persona_speaks_and_reopens_after():
    show = interview()
    show.speech_started("kiosk", 1.0)
    show.asked("kiosk", 2.0)
    assert show.speaking_started("t1", "tts", 2.5).state.floor is None
    assert show.speaking_ended("t1", 6.0).state.floor == "kiosk"


def test_the_interview_moves_on_after_its_last_question_has_been_answered():
    show = interview()
    show.asked("kiosk", 1.0)
    step = show.asked("kiosk", 10.0)
    assert step.state.floor is None and step.state.questions_left == 0  # no third question
    show.speaking_started("t2", "tts", 11.0)
    assert show.tick(12.0, MONDAY_NOON).state is None  # the last answer is not cut by the move
    show.speaking_ended("t2", 15.0)
    assert show.tick(15.1, MONDAY_NOON).state.cue == "credits"


def test_the_interview_ends_when_its_minutes_are_spent():
    show = interview(now=0.0)
    assert show.tick(119.0, MONDAY_NOON).state is None
    assert show.tick(120.0, MONDAY_NOON).state.cue == "credits"


def test_a_visitor_who_goes_quiet_is_thanked_once_and_the_floor_stays_open():
    show = interview(now=0.0)
    assert not show.tick(30.0, MONDAY_NOON).publish, "nobody is there: nobody to thank"
    show.speech_started("kiosk", 30.0)
    show.speech_ended("kiosk", 32.0)
    show.asked("kiosk", 32.5)
    show.speaking_started("t1", "tts", 33.0)
    show.speaking_ended("t1", 38.0)
    assert not show.tick(57.9, MONDAY_NOON).publish
    step = show.tick(58.0, MONDAY_NOON)
    (thanks,) = step.publish
    assert isinstance(thanks.payload, BotReply) and thanks.payload.text in THANKS
    assert thanks.payload.persona == "ines-marlow" and thanks.turn_id.startswith("thanks-")
    assert show.state(58.0).floor == "kiosk"
    assert not show.tick(110.0, MONDAY_NOON).publish, "thanked once"


def test_barge_in_stop_cuts_the_answer_when_the_visitor_speaks_and_off_lets_it_run():
    for policy, expected in (("stop", ["t1"]), ("off", [])):
        show = interview(barge_in=policy)
        show.speaking_started("t1", "tts", 1.0)
        step = show.speech_started("kiosk", 2.0)
        assert skips(step) == expected, policy
        assert step.cut == (("t1", "barge-in") if expected else None)


def test_an_answer_past_its_limit_is_cut_once_and_the_floor_reopens_if_speech_never_ends():
    show = interview(now=0.0)
    show.speaking_started("t1", "tts", 10.0)
    assert not show.tick(39.9, MONDAY_NOON).publish
    step = show.tick(40.0, MONDAY_NOON)
    assert skips(step) == ["t1"] and step.cut[0] == "t1"
    assert not show.tick(41.0, MONDAY_NOON).publish, "cut once"
    assert show.tick(45.0, MONDAY_NOON).state.floor == "kiosk"


def test_a_tts_that_restarted_mid_answer_does_not_keep_the_floor_shut():
    show = interview()
    show.speaking_started("t1", "old-tts", 1.0)
    assert show.speaker_seen("old-tts", 2.0).state is None
    assert show.speaker_seen("new-tts", 3.0).state.floor == "kiosk"


def test_leaving_an_interview_while_the_persona_speaks_stops_the_voice():
    show = interview()
    show.speaking_started("t1", "tts", 1.0)
    step = show.command("next", 2.0, MONDAY_NOON)
    assert step.state.phase == "credits" and skips(step) == [None]


# -- opening hours ------------------------------------------------------------------------


def test_opening_hours_across_midnight_belong_to_the_night_they_opened():
    fridays = Hours(opens=time(20), closes=time(2), days=frozenset({4}))
    friday, saturday, thursday = datetime(2025, 6, 6), datetime(2025, 6, 7), datetime(2025, 6, 5)
    assert fridays.is_open(friday.replace(hour=23, minute=59))
    assert fridays.is_open(saturday.replace(hour=1, minute=59))
    assert not fridays.is_open(saturday.replace(hour=2))
    assert not fridays.is_open(saturday.replace(hour=21)), "saturday is not a listed day"
    assert not fridays.is_open(friday.replace(hour=1)), "thursday night was not open"
    assert not fridays.is_open(thursday.replace(hour=22))


def test_the_show_opens_by_itself_and_at_closing_finishes_the_film_then_closes():
    hours = Hours(opens=time(10), closes=time(18), days=frozenset(range(7)))
    show = machine(hours=hours)
    assert show.tick(0.0, MONDAY_NOON.replace(hour=9, minute=59)).state.phase == "closed"
    assert show.tick(1.0, MONDAY_NOON.replace(hour=10)).state.phase == "preshow"
    show.command("next", 2.0, MONDAY_NOON)
    evening = MONDAY_NOON.replace(hour=18)
    assert show.tick(50.0, evening).state is None and show.phase == "screening"  # the film plays on
    assert show.command("go", 60.0, evening.replace(minute=1)).state.phase == "closed"
    refused = show.command("go", 70.0, evening.replace(minute=2))
    assert refused.accepted is False and "outside opening hours (open 10:00-18:00" in refused.reason


def test_at_closing_an_interview_takes_no_more_questions_and_closes_when_the_answer_ends():
    show = interview(hours=Hours(opens=time(10), closes=time(18), days=frozenset(range(7))))
    show.speaking_started("t1", "tts", 1.0)
    assert show.tick(2.0, MONDAY_NOON.replace(hour=18)).state is None and show.floor is None
    show.speaking_ended("t1", 5.0)
    assert show.tick(5.1, MONDAY_NOON.replace(hour=18)).state.phase == "closed"


# -- a restart --------------------------------------------------------------------------


def test_a_restarted_show_carries_on_with_the_same_cue_its_clock_moved_on_mute_kept():
    show = at(machine(), "segment-1", now=0.0)
    show.command("mute", 1.0, MONDAY_NOON)
    snapshot = show.snapshot(30.0)
    again = machine()
    said = again.restore(snapshot, 5000.0, away_s=20.0)
    assert "segment-1" in said
    state = again.tick(5000.0, MONDAY_NOON).state
    assert state.cue == "segment-1" and state.muted and state.ends_in_s == 40.0


def test_a_show_without_a_usable_cue_list_refuses_to_start_and_says_why():
    show = ShowMachine(
        None, hours=ALWAYS, floor_source="kiosk", go_guard_s=0.5, barge_in="off", persona="p", thanks=THANKS,
        unusable="cues.toml: cue 2 (x): media: a screening cue needs its film segment",
    )  # fmt: skip
    assert show.tick(0.0, MONDAY_NOON).state.phase == "closed"
    step = show.command("go", 1.0, MONDAY_NOON)
    assert step.accepted is False and "cue 2 (x): media" in step.reason


# -- the cue list -----------------------------------------------------------------------


def test_the_demo_cue_list_loads_and_its_missing_films_are_warnings(tmp_path):
    loaded = load_cues(ROOT / "content" / "show" / "cues.toml", film_dir=tmp_path)
    kinds = [cue.kind for cue in loaded.cues.cue]
    assert kinds[0] == "preshow" and kinds[-1] == "credits" and kinds.count("interview") >= 2
    assert len(loaded.warnings) == kinds.count("screening")
    assert all("no such file" in warning and "the renderer shows the avatar" in warning for warning in loaded.warnings)


@pytest.mark.parametrize(
    ("cue", "words"),
    [
        ('kind = "interview"\nminutes = 3\nquestions = 4', "cue 2 (bad): silence_s: an interview cue needs it"),
        ('kind = "screening"\nduration_s = 5', "cue 2 (bad): media: a screening cue needs its film segment"),
        ('kind = "credits"\nquestions = 3', "cue 2 (bad): questions: only an interview cue takes it"),
        ('kind = "screening"\nmedia = "gone.mp4"', "cue 2 (bad): duration_s: needed"),
        ('kind = "credits"\nduration_s = -1', "cue 2 (bad): duration_s: Input should be greater than 0"),
        ('kind = "encore"', "cue 2 (bad): kind: Input should be"),
        ('kind = "credits"\nlength = 3', "cue 2 (bad): length: unknown key"),
    ],
)
def test_a_bad_cue_is_named_with_the_file_the_cue_and_the_field(tmp_path, cue, words):
    path = tmp_path / "cues.toml"
    path.write_text(f'[[cue]]\nid = "start"\nkind = "preshow"\n\n[[cue]]\nid = "bad"\n{cue}\n')
    with pytest.raises(CueListError) as raised:
        load_cues(path, film_dir=tmp_path)
    assert str(raised.value).startswith(f"{path}: ") and words in str(raised.value)


def test_a_screening_without_a_duration_takes_its_films_length(tmp_path):
    import av
    import numpy as np

    with av.open(str(tmp_path / "clip.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(25):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    path = tmp_path / "cues.toml"
    path.write_text('[[cue]]\nid = "clip"\nkind = "screening"\nmedia = "clip.mp4"\n')
    (cue,) = load_cues(path, film_dir=tmp_path).cues.cue
    assert cue.duration_s == pytest.approx(2.5, abs=0.2)


def test_two_cues_of_one_name_and_an_empty_list_are_refused(tmp_path):
    path = tmp_path / "cues.toml"
    path.write_text('[[cue]]\nid = "a"\nkind = "preshow"\n[[cue]]\nid = "a"\nkind = "credits"\n')
    with pytest.raises(CueListError, match="two cues are named 'a'"):
        load_cues(path, film_dir=tmp_path)
    path.write_text("loop = true\n")
    with pytest.raises(CueListError, match="a show needs at least one cue"):
        load_cues(path, film_dir=tmp_path)
