"""A node killed in the middle of a turn of the demo show, end to end: nothing archived is lost,
the supervisor starts the node again, and the next visitor is answered."""

from __future__ import annotations

import os
import signal

import pytest

from installation.messages import AsrFinal, BotReply, Health, SpeechEnded, TtsEnd

from .demo import KIOSK, collect, first, interview_cues, next_message, of

TOPICS = ("vad.", "asr.final", "bot.reply", "tts.end", "health.supervisor", "health.bot")
SILENCE_S = 4
"""The visitor who got no answer is thanked this soon, and the floor is free for the next."""


def _supervisor(health: Health) -> bool:
    return health.node == "supervisor"


@pytest.mark.timeout(180)
async def test_a_bot_killed_mid_turn_loses_no_archived_turn_and_the_next_question_is_answered(demo):
    show = demo(cues=interview_cues(silence_s=SILENCE_S), turns=2)
    async with show.probe(*TOPICS) as probe:
        answered = await next_message(probe, of(TtsEnd, KIOSK, lambda end: end.reason == "done"), timeout=90)
        before = show.archive()
        assert before[answered.turn_id]["answer"]
        supervisor = await next_message(probe, of(Health, where=_supervisor), timeout=10)
        bot_pid = supervisor.payload.detail["bot.pid"]
        assert isinstance(bot_pid, int)

        # The next question has just been asked: the asr is decoding it, the bot is about to answer.
        asked = await next_message(probe, of(SpeechEnded, KIOSK), timeout=30)
        os.kill(bot_pid, signal.SIGKILL)
        turn = asked.turn_id
        restarted = of(Health, where=lambda h: _supervisor(h) and h.detail["bot.restarts"] == 1
                       and h.detail["bot.state"] == "running")  # fmt: skip
        back = of(Health, where=lambda h: h.node == "bot" and h.status == "ready" and h.pid != bot_pid)
        seen = await collect(probe, of(AsrFinal, turn), restarted, back, timeout=30)
        heard = first(seen, of(AsrFinal, turn))
        assert not [m for m in seen if of(BotReply, turn)(m)]  # the turn under way died with the bot

        later = await next_message(probe, of(BotReply, KIOSK), timeout=60)
        assert later.source == "bot" and later.turn_id != turn
    assert await show.finished(60) == 0  # two visitors' turns answered: the first and the later one

    after = show.archive()
    for turn_id, row in before.items():
        assert after[turn_id]["question"] == row["question"] and after[turn_id]["answer"] == row["answer"]
    interrupted = after[turn]
    assert interrupted["question"] == heard.payload.text and interrupted["answer"] is None
    assert after[later.turn_id]["answer"] and after[later.turn_id]["tts_end_reason"] == "done"
