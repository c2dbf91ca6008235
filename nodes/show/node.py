"""The show node: runs the state machine on the bus, and keeps the archive of every turn.

It publishes show.state on every change (latched by the broker), answers each show.command
with show.ack, and ticks the machine's timers. On start it carries on from the state it
last saved in the archive (the same cue, its clock moved on by the time it was away, mute
and blackout as they were), so a crash of the show changes nothing the audience sees.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from installation.messages import (
    Ask,
    AsrFinal,
    AudioFrame,
    BotReply,
    Health,
    Message,
    RenderShown,
    ShowAck,
    ShowCommand,
    SpeechEnded,
    SpeechStarted,
    TtsAudio,
    TtsEnd,
    TtsStart,
)
from installation.messages.system import Detail
from installation.node import Node
from installation.persona import Lines, PackError, load_persona_info

from .archive import Archive
from .cues import CueListError, load_cues
from .hours import Hours, local_now
from .machine import ShowMachine
from .recorder import QuestionRecorder
from .turns import Step

_LOGGER = logging.getLogger(__name__)
TICK_S = 0.1
"""How often the cue's clock and the opening hours are looked at."""
_FRESH_BEATS = 3
"""A tts heartbeat older than this many beats is a latched leftover, not news."""
TURN_QUIET_S = 30.0
"""A turn silent this long (no tts.end came: no tts, or it died) no longer takes the operator's
commands as interventions in it."""


class ShowNode(Node):
    """Runs the show from its cue list, gives the floor, and archives every turn."""

    name = "show"
    topics = ("show.command", "vad.", "asr.final", "bot.ask", "bot.reply", "tts.", "render.shown", "health.tts")

    def __init__(self, settings, **kwargs) -> None:
        if settings.show.keep_audio:
            self.topics = (*self.topics, "audio.in.")  # type: ignore[misc]
        super().__init__(settings, **kwargs)

    async def start(self) -> None:
        show = self.settings.show
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive")  # one writer keeps order
        self.archive: Archive | None = None
        self._recorder = QuestionRecorder() if show.keep_audio else None
        self._turn_open: str | None = None
        """The latest turn not yet ended: an operator's command now intervenes in it."""
        self._turn_seen_at = 0.0
        self._typed: str | None = None
        """The id given to the latest question that came without one (typed at a console)."""
        self._audio_seen: set[str] = set()
        self._cue_shown: str | None = None
        self._heard: dict[str, str] = {}
        """source → the turn of its utterance under way, if it had the floor when it began."""
        self._asked: set[str] = set()
        self.turns_answered = 0
        """Visitors' turns whose answer was spoken to its end and archived, since this start."""
        self.machine = await asyncio.to_thread(self._build_machine)
        try:
            self.archive = await asyncio.get_running_loop().run_in_executor(self._writer, Archive, show.data_dir)
        except Exception as error:  # a full disk or a bad path: the show goes on, unrecorded
            self._trouble(f"archive: cannot open {show.data_dir}: {error}")
        else:
            _LOGGER.info("show: archive %s", self.archive.path)
            saved = await self._in_writer(self.archive.load_show)
            if saved is not None:
                snapshot, wall = saved
                said = self.machine.restore(snapshot, time.monotonic(), away_s=time.time() - wall)
                _LOGGER.info("show: carrying on from the last saved state: %s", said)
        self._apply(self.machine.tick(time.monotonic(), local_now(show.timezone)))
        self._ticker = asyncio.create_task(self._tick())

    def _build_machine(self) -> ShowMachine:
        show = self.settings.show
        cues, problem = None, ""
        try:
            loaded = load_cues(show.cues, film_dir=self.settings.renderer.film_dir)
        except CueListError as error:
            problem = str(error)
            self.status, self.error = "error", f"cue list: {problem}"
            _LOGGER.error("show: %s; the show stays closed", problem)
        else:
            cues = loaded.cues
            for warning in loaded.warnings:
                _LOGGER.warning("show: %s", warning)
            _LOGGER.info("show: %d cues from %s", len(cues.cue), show.cues)
        try:
            info = load_persona_info(self.settings.bot.persona)
            persona, thanks = info.id, info.lines.thanks
        except (PackError, OSError) as error:
            _LOGGER.warning("show: %s; the persona's thanks are the default ones", error)
            persona, thanks = Path(self.settings.bot.persona).name or "persona", Lines.model_fields["thanks"].default
        return ShowMachine(
            cues, hours=Hours.from_settings(show), floor_source=self.settings.mic.source,
            go_guard_s=show.go_guard_ms / 1000, barge_in=show.barge_in, persona=persona, thanks=thanks,
            unusable=problem,
        )  # fmt: skip

    async def stop(self) -> None:
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        writer = getattr(self, "_writer", None)
        if writer is not None:
            if self.archive is not None:
                writer.submit(self.archive.close)
            await asyncio.to_thread(writer.shutdown, wait=True)  # what was seen is written before we go

    def health_detail(self) -> Detail:
        machine = getattr(self, "machine", None)
        if machine is None:
            return {}
        archive = self.archive
        return {"phase": machine.phase, "cue": machine.cue.id if machine.cue else None, "floor": machine.floor,
                "paused": machine.paused, "muted": machine.muted, "blackout": machine.blackout,
                "hours": machine.hours.describe(), "archive": str(archive.path) if archive else "(none)",
                "archive_writes": archive.writes if archive else 0,
                "turns_answered": self.turns_answered}  # fmt: skip

    # -- the bus ---------------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        now, wall, machine = time.monotonic(), message.wall, self.machine
        match message.payload:
            case ShowCommand() as command if message.sid != self.bus.sid:  # our own skips are for the tts
                self._command(command, message, now)
            case SpeechStarted(source=source, first_index=first):
                heard = machine.floor == source  # talk while the floor is shut is not a turn: the asr ignores it
                self._apply(machine.speech_started(source, now))
                if heard and message.turn_id is not None:
                    self._heard[source] = turn_id = self._turn(message)
                    self._note(turn_id, wall, "speech_start", source=source, cue=self._cue())
                    if self._recorder is not None:
                        self._recorder.start(source, turn_id, first)
            case SpeechEnded(source=source):
                self._apply(machine.speech_ended(source, now))
                if message.turn_id is not None and self._heard.pop(source, None) == message.turn_id:
                    self._note(self._turn(message), wall, "speech_end", source=source)
                    self._keep_question_audio(source, wall)
            case AsrFinal(source=source, text=text) | Ask(source=source, text=text):
                self._apply(machine.asked(source, now))
                stage = "asr_final" if isinstance(message.payload, AsrFinal) else None
                turn_id = self._turn(message)
                self._note(turn_id, wall, stage, source=source, cue=self._cue(), question=text)
                if turn_id is not None:
                    self._asked.add(turn_id)
            case BotReply() as reply:
                turn_id = self._turn(message)
                if turn_id is None:
                    return
                if reply.part == 0:
                    self._note(turn_id, wall, "bot_reply", answer=reply.text, persona=reply.persona,
                               corpus_ids=reply.corpus_ids, confidence=reply.confidence, fallback=reply.fallback,
                               moderated=reply.moderated, overridden=reply.overridden, cue=self._cue(),
                               **({"source": "show"} if message.source == "show" else {}))  # fmt: skip
                else:
                    self._write(self.archive and self.archive.add_answer_part, turn_id, reply.text, wall=wall)
            case TtsStart():
                turn_id = self._turn(message)
                if turn_id is not None:
                    self._apply(machine.speaking_started(turn_id, message.sid, now))
                    self._note(turn_id, wall, "tts_start")
            case TtsAudio():
                turn_id = self._turn(message)
                if turn_id is not None and turn_id not in self._audio_seen:
                    self._audio_seen.add(turn_id)
                    self._note(turn_id, wall, "tts_audio")
            case TtsEnd(reason=reason):
                turn_id = self._turn(message)
                if turn_id is not None:
                    self._apply(machine.speaking_ended(turn_id, now))
                    self._note(turn_id, wall, "tts_end", tts_end_reason=reason)
                    if turn_id in self._asked:  # counted once its row is written: the writer keeps order
                        self._asked.discard(turn_id)
                        self._write(self._answered)
                    self._audio_seen.discard(turn_id)
                    if self._turn_open == turn_id:
                        self._turn_open = None
            case RenderShown():
                turn_id = message.turn_id
                if turn_id is not None:
                    self._note(turn_id, wall, "answer_shown")
            case Health(node="tts", status=status) if time.time() - wall < _FRESH_BEATS * self.settings.bus.heartbeat_s:
                self._apply(machine.speaker_seen(message.sid, now, stopping=status == "stopping"))
            case AudioFrame(source=source, index=index) if self._recorder is not None:
                self._recorder.frame(source, index, message.data)

    def _command(self, command: ShowCommand, message: Message, now: float) -> None:
        step = self.machine.command(command.command, now, local_now(self.settings.show.timezone))
        who = f"{message.source}" + (f" ({command.operator})" if command.operator else "")
        if step.accepted:
            _LOGGER.info("show: %s from %s", command.command, who)
            if self._turn_open is not None and now - self._turn_seen_at < TURN_QUIET_S:
                self._write(self.archive and self.archive.add, self._turn_open, "intervention", command.command,
                            wall=message.wall)  # fmt: skip
        else:
            _LOGGER.warning("show: refused %s from %s: %s", command.command, who, step.reason)
        self._apply(step)
        self.bus.publish(ShowAck(command=command.command, accepted=bool(step.accepted), reason=step.reason,
                                 command_sid=message.sid, command_seq=message.seq))  # fmt: skip

    def _turn(self, message: Message) -> str | None:
        """The message's turn; a typed question without one gets one, which its answer shares."""
        turn_id = message.turn_id
        if turn_id is None and isinstance(message.payload, Ask | AsrFinal):
            turn_id = self._typed = f"{message.payload.source}-{message.sid}-{message.seq}"
        elif turn_id is None:
            turn_id = self._typed
        if turn_id is not None and not isinstance(message.payload, TtsEnd):
            self._turn_open, self._turn_seen_at = turn_id, time.monotonic()
        return turn_id

    def _cue(self) -> str | None:
        cue = self.machine.cue
        return cue.id if cue else None

    # -- effects -----------------------------------------------------------------------------

    def _apply(self, step: Step) -> None:
        for note in step.notes:
            _LOGGER.info("show: %s", note)
        if step.state is not None:
            self.bus.publish(step.state)
            if step.state.cue != self._cue_shown:  # a turn left unfinished (a node died) ends with its cue
                self._cue_shown, self._turn_open = step.state.cue, None
            if self.archive is not None:
                self._write(self.archive.save_show, self.machine.snapshot(time.monotonic()), wall=time.time())
        for outgoing in step.publish:
            self.bus.publish(outgoing.payload, turn_id=outgoing.turn_id)
        if step.cut is not None:
            turn_id, why = step.cut
            self._write(self.archive and self.archive.add, turn_id, "cut", why, wall=time.time())

    def _note(self, turn_id: str | None, wall: float, stage: str | None, **fields: object) -> None:
        if turn_id is not None:
            self._write(self.archive and self.archive.note, turn_id, wall=wall, stage=stage, **fields)

    def _keep_question_audio(self, source: str, wall: float) -> None:
        heard = self._recorder.end(source) if self._recorder is not None else None
        if heard is not None and self.archive is not None:
            turn_id, pcm = heard
            self._write(self.archive.keep_audio, turn_id, pcm, sample_rate_hz=self._recorder.sample_rate_hz, wall=wall)

    def _write(self, action: Callable | None, *args: object, **kwargs: object) -> None:
        """Run an archive write on its own thread, in order; a failure is reported, never raised."""
        if action is None:
            return
        self._writer.submit(action, *args, **kwargs).add_done_callback(self._written)

    def _answered(self) -> None:
        self.turns_answered += 1

    def _written(self, future: Future) -> None:
        error = future.exception()
        if error is not None:
            self._trouble(f"archive: {type(error).__name__}: {error}")

    def _trouble(self, problem: str) -> None:
        self.status, self.error = "degraded", problem[:300]
        _LOGGER.error("show: %s", problem)

    async def _in_writer(self, action: Callable) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._writer, action)

    async def _tick(self) -> None:
        timezone = self.settings.show.timezone
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._apply(self.machine.tick(time.monotonic(), local_now(timezone)))
            except Exception as error:  # the clock must keep ticking, or no cue ever ends
                self.error = f"{type(error).__name__}: {error}"[:300]
                _LOGGER.exception("show: a tick failed")
