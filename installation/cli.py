"""The `likeness` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import sdnotify

# Every node process starts here (`likeness node NAME`): what only some commands need is imported
# in those commands, so that no process pays for the others at start-up.
from . import curve, models
from .bus import BusTimeout
from .logs import setup_logging
from .messages import COMMANDS
from .node import _serve, settings_or_exit
from .settings import DEFAULT_FILE, ConfigError, Settings, load_settings

_LOGGER = logging.getLogger(__name__)
CHECKOUT = DEFAULT_FILE.parent.parent
"""The checkout the installation runs from: its config/ and content/ hold the demo."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command not in ("node", "persona") and rest:  # a node parses its own; a question may follow options
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.handler(args, rest)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="likeness", description="Run and inspect a Likeness installation.")
    parser.set_defaults(handler=lambda args, rest: parser.print_help())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--config", help="site settings file (default: $LIKENESS_CONFIG)")
        sub.set_defaults(handler=handler)
        return sub

    run = command("run", _run, "start the broker and every enabled node, and keep them running")
    run.add_argument("--nodes", help="comma-separated nodes to start instead of nodes.enabled")
    run.add_argument(
        "--demo",
        action="store_true",
        help="the demo show (config/demo.toml unless --config; the demo film is made if missing)",
    )
    run.add_argument("--turns", type=int, metavar="N",
                     help="stop everything, exit 0, once N visitors' turns are answered and archived")  # fmt: skip
    node = command("node", _node, "run one node (what systemd starts on each machine)")
    node.add_argument("name")
    command("bus", _bus, "run the broker alone")
    status = command("status", _status, "every node's health, read off the bus")
    status.add_argument("--json", action="store_true", help="one JSON object per node")
    status.add_argument("--wait", type=float, help="seconds to listen for heartbeats")
    tap = command("tap", _tap, "print bus messages as JSON lines")
    tap.add_argument("prefix", nargs="?", default="", help="topic prefix, e.g. asr. (default: everything)")
    tap.add_argument("--count", type=int, help="stop after this many messages")
    tap.add_argument("--seconds", type=float, help="stop after this long")
    send = command("send", _send, 'publish one event, e.g. likeness send show.command \'{"command": "go"}\'')
    send.add_argument("topic")
    send.add_argument("json", help="the payload as a JSON object")
    send.add_argument("--turn-id")
    config = command("config", _config, "show the effective settings and where each came from")
    config.add_argument("action", choices=["show"])
    keys = command("keys", _keys, "make CURVE key pairs for a bus across machines")
    keys.add_argument("action", choices=["generate"])
    keys.add_argument("name", help="e.g. broker, or the machine's name")
    keys.add_argument("--dir", type=Path, help="where to write (default: bus.keys_dir)")
    keys.add_argument("--force", action="store_true", help="replace an existing key pair")
    vosk = command("models", _models, "install, list and remove Vosk speech models (in asr.models_dir)")
    vosk.add_argument("action", choices=["list", "install", "remove"])
    vosk.add_argument("model", nargs="?", help=f"a catalog model ({', '.join(models.CATALOG)}) or an installed one")
    vosk.add_argument("--from", dest="source", metavar="FILE|URL", help="install this .zip or .tar.gz archive")
    vosk.add_argument("--name", help="install under this name (default: the catalog's, or the archive's top folder)")
    vosk.add_argument("--sha256", metavar="HEX", help="the archive's SHA-256, checked before unpacking")
    vosk.add_argument("--force", action="store_true", help="replace an installed model of the same name")
    asr = command("asr", _asr, "run the speech recognizer on audio files: one line of text per file")
    asr.add_argument("action", choices=["transcribe"])
    asr.add_argument("files", nargs="+", metavar="FILE")
    asr.add_argument(
        "--engine", choices=["auto", "pocketsphinx", "vosk", "whisper", "hybrid"], help="default: asr.engine"
    )
    asr.add_argument("--json", action="store_true", help="one JSON object per file, with words and timings")
    command("devices", _devices, "the sound devices that can record (for mic.device)")
    persona = command("persona", _persona, "import, ask and evaluate a persona pack; check questions' moderation")
    persona.add_argument("action", choices=["ask", "eval", "import", "moderate"])
    persona.add_argument("items", nargs="*", metavar="ARG",
                         help="ask: the question (none: one per line on stdin); eval: QUESTIONS.jsonl; "
                              "import: transcripts (Q:/A: .txt), .srt, .vtt or .jsonl files; "
                              "moderate: a file of questions, one a line or JSON lines")  # fmt: skip
    persona.add_argument("--persona", type=Path, help="the pack (default: bot.persona)")
    persona.add_argument("--to", type=Path, help="import: the pack to make or add to")
    show = command("show", _show, "send the show a command and print its answer (accepted, or refused: why)")
    show.add_argument("action", choices=COMMANDS, metavar="|".join(COMMANDS))
    show.add_argument("--operator", default="", help="who gives the command, for the log")
    show.add_argument("--wait", type=float, default=3.0, help="seconds to wait for the show's answer")
    archive = command("archive", _archive, "export the archive of every turn (show.data_dir), for the film makers")
    archive.add_argument("action", choices=["export"])
    archive.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    archive.add_argument("--out", type=Path, help="write here (default: standard output)")
    return parser


def _settings(args: argparse.Namespace, node: str) -> Settings:
    settings = settings_or_exit(args.config)
    setup_logging(node, level=settings.log.level, format=settings.log.format)
    return settings


def _fail(message: str, code: int = 1) -> None:
    print(f"likeness: {message}", file=sys.stderr)
    raise SystemExit(code)


def node_main(name: str, settings: Settings) -> Callable[[Sequence[str]], None]:
    """The `main(argv)` of node NAME: nodes.NAME, or a site module from [nodes.modules]."""
    module_name = settings.nodes.modules.get(name, f"nodes.{name}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            _fail(f"unknown node {name!r}: no module {module_name} (site nodes are listed in [nodes.modules])", 2)
        raise
    if not callable(getattr(module, "main", None)):
        _fail(f"node module {module_name} has no main(argv)", 2)
    return module.main


def _check_node(name: str, settings: Settings) -> None:
    """Fail if node NAME has no module; found, not imported: each node imports its own, in its process."""
    module_name = settings.nodes.modules.get(name, f"nodes.{name}")
    try:
        found = importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:  # a package on the way is missing
        found = False
    if not found:
        _fail(f"unknown node {name!r}: no module {module_name} (site nodes are listed in [nodes.modules])", 2)


def _node(args: argparse.Namespace, rest: list[str]) -> None:
    settings = settings_or_exit(args.config)
    main = node_main(args.name, settings)
    main([*(["--config", args.config] if args.config else []), *rest])


def _run(args: argparse.Namespace, rest: list[str]) -> None:
    from .supervisor import Supervisor

    if args.demo and not args.config:
        args.config = str(CHECKOUT / "config" / "demo.toml")
    if args.turns is not None and args.turns < 1:
        _fail("run: --turns needs a number of turns, 1 or more", 2)
    settings = _settings(args, "supervisor")
    names = [n for n in args.nodes.split(",") if n] if args.nodes is not None else list(settings.nodes.enabled)
    for name in names:
        _check_node(name, settings)  # an unknown name fails now, not in a restart loop
    if args.turns is not None and "show" not in names:
        _fail("run: --turns counts the turns the show archives, and the show node is not among the nodes", 2)
    if args.demo:
        _make_demo_film(settings)
    supervisor = Supervisor(settings, node_names=names, config_path=args.config, turns=args.turns)
    _LOGGER.info("supervisor: running bus + %s; `likeness status` shows them, Ctrl-C stops",
                 ", ".join(names) or "no nodes")  # fmt: skip
    asyncio.run(_serve(supervisor))


def _make_demo_film(settings: Settings) -> None:
    """The demo's film segments, made by the checkout's own script the first time (~20 s), in a
    process of its own: whatever goes wrong there, the show still runs (with the avatar)."""
    script = CHECKOUT / "content" / "demo" / "film" / "make_film.py"
    if not script.exists():
        _LOGGER.warning("demo: no %s; the screenings show the avatar instead of the film", script)
        return
    directory = settings.renderer.film_dir
    if _film_looks_current(script.with_name("freshness.py"), directory):
        _LOGGER.info("demo: the film is ready in %s", directory)
        return
    done = subprocess.run([sys.executable, str(script), "--out", str(directory), "--log-level", "warning"],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        _LOGGER.error("demo: cannot make the demo film in %s (%s); the screenings show the avatar", directory, why)
    else:
        _LOGGER.info("demo: the film is ready in %s", directory)


def _film_looks_current(freshness: Path, directory: Path) -> bool:
    """make_film.py's own glance at the film's age, loaded from its file: no PyAV, no pygame."""
    spec = importlib.util.spec_from_file_location("demo_film_freshness", freshness)
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return bool(module.looks_current(directory))
    except Exception:  # an old or broken checkout: make_film.py decides, as before
        _LOGGER.debug("demo: cannot glance at the film's age", exc_info=True)
        return False


def _bus(args: argparse.Namespace, rest: list[str]) -> None:
    from .broker import Broker

    settings = _settings(args, "bus")
    try:
        broker = Broker(settings.bus)
        broker.start()
    except (OSError, curve.KeyFileError) as error:
        _fail(str(error))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    systemd = sdnotify.SystemdNotifier()
    systemd.notify("READY=1")
    while not stop.wait(settings.bus.heartbeat_s):
        systemd.notify("WATCHDOG=1")
    broker.stop()


def _status(args: argparse.Namespace, rest: list[str]) -> None:
    from . import operator_tools

    settings = _settings(args, "status")
    try:
        rows = asyncio.run(operator_tools.status(settings, wait_s=args.wait))
    except BusTimeout as error:
        _fail(f"status: {error}")
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(operator_tools.format_table(rows))


def _tap(args: argparse.Namespace, rest: list[str]) -> None:
    from . import operator_tools

    settings = _settings(args, "tap")
    try:
        asyncio.run(operator_tools.tap(settings, args.prefix, count=args.count, seconds=args.seconds))
    except KeyboardInterrupt:
        pass
    except BusTimeout as error:
        _fail(f"tap: {error}")


def _send(args: argparse.Namespace, rest: list[str]) -> None:
    from . import operator_tools

    settings = _settings(args, "cli")
    try:
        payload = operator_tools.payload_for(args.topic, args.json)
        operator_tools.check_turn_id(args.turn_id)
    except operator_tools.BadPayload as error:
        _fail(f"send: {error}", 2)
    try:
        asyncio.run(operator_tools.send(settings, payload, turn_id=args.turn_id))
    except BusTimeout as error:
        _fail(f"send: {error}")


def _config(args: argparse.Namespace, rest: list[str]) -> None:
    try:
        loaded = load_settings(args.config)
    except ConfigError as error:
        _fail(f"settings error: {error}", 2)
    width = max(len(key) for key in loaded.origins) + 3
    for section, fields in loaded.settings.model_dump(mode="json").items():
        _print_table(section, fields, loaded.origins, width)


def _print_table(name: str, fields: dict, origins: dict[str, str], width: int) -> None:
    """One [section] with each value's origin, then its sub-sections ([bot.generative])."""
    print(f"[{name}]")
    tables = []
    for key, value in fields.items():
        dotted = f"{name}.{key}"
        if isinstance(value, dict) and any(known.startswith(dotted + ".") for known in origins):
            tables.append((dotted, value))
            continue
        print(f"{key} = {_toml_value(value)}".ljust(width + 30) + f"  # {origins.get(dotted, 'default')}")
    print()
    for dotted, value in tables:
        _print_table(dotted, value, origins, width)


def _toml_value(value: object) -> str:
    if isinstance(value, dict) and value:
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def _keys(args: argparse.Namespace, rest: list[str]) -> None:
    settings = settings_or_exit(args.config)
    directory = args.dir or settings.bus.keys_dir
    try:
        public, secret = curve.generate(args.name, directory, force=args.force)
    except curve.KeyFileError as error:
        _fail(str(error))
    print(f"wrote {public} (public: copy it to the broker's {settings.bus.authorized_dir})")
    print(f"wrote {secret} (secret: keep it on this machine only)")


def _models(args: argparse.Namespace, rest: list[str]) -> None:
    settings = _settings(args, "models")
    models_dir = settings.asr.models_dir
    try:
        if args.action == "list":
            _list_models(models_dir, configured=settings.asr.vosk_model)
        elif args.action == "remove":
            if args.model is None:
                _fail("models remove: name the model to remove", 2)
            print(f"removed {models.remove(models_dir, args.model)}")
        else:
            if args.model is None and args.source is None:
                _fail("models install: name a catalog model or give an archive with --from FILE|URL", 2)
            # SIGTERM unwinds like Ctrl-C, so the half-downloaded and half-unpacked files are removed.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            progress = sys.stderr.isatty() and not os.environ.get("CI")
            model = models.install(models_dir, args.model, source=args.source, name=args.name, sha256=args.sha256,
                                   force=args.force, progress=progress, say=print)  # fmt: skip
            print(f"installed {model.name} ({models.human_size(model.size)}) in {model.path}")
    except models.ModelError as error:
        _fail(f"models {args.action}: {error}")
    except KeyboardInterrupt:
        _fail(f"models {args.action}: interrupted; nothing was changed", 130)


def _asr(args: argparse.Namespace, rest: list[str]) -> None:
    settings = _settings(args, "asr")
    from nodes.asr.transcribe import transcribe  # the CLI runs nodes' code like `likeness node` does

    try:
        code = transcribe(args.files, settings.asr, engine=args.engine, as_json=args.json, persona=settings.bot.persona)
    except FileNotFoundError as error:
        _fail(f"asr: {error}")
    raise SystemExit(code)


def _persona(args: argparse.Namespace, rest: list[str]) -> None:
    settings = _settings(args, "persona")
    from nodes.bot import tools  # the CLI runs nodes' code like `likeness node` does
    from nodes.bot.importer import import_sources
    from nodes.bot.persona import PackError

    from .moderation import Moderator
    from .moderation.review import review

    pack = args.persona or settings.bot.persona
    if any(word.startswith("-") for word in rest):
        _fail(f"persona: unrecognized arguments: {' '.join(rest)}", 2)
    args.items += rest
    try:
        if args.action == "import":
            if not args.to or not args.items:
                _fail("persona import: give the source files and --to DIR", 2)
            done = import_sources([Path(item) for item in args.items], args.to)
            print(f"added {done.added} entries to {done.pack} ({done.skipped} already there)")
        elif args.action == "moderate":
            if len(args.items) != 1:
                _fail('persona moderate: give one file of questions (.txt, or .jsonl with "category" labels)', 2)
            checked = review(Moderator(settings.bot.blocklist), Path(args.items[0]))
            print(checked.report())
            raise SystemExit(1 if checked.disagreements else 0)  # a labelled question the rules get wrong
        elif args.action == "ask":
            if len(args.items) > 1:
                _fail("persona ask: one question (quote it), or none to read questions from stdin", 2)
            tools.ask(pack, settings.bot, args.items[0] if args.items else None)
        else:
            if len(args.items) != 1:
                _fail("persona eval: give one QUESTIONS.jsonl", 2)
            print(tools.evaluate(pack, settings.bot, Path(args.items[0])).report())
    except (PackError, ValueError, OSError) as error:
        _fail(f"persona {args.action}: {error}")


def _show(args: argparse.Namespace, rest: list[str]) -> None:
    settings = _settings(args, "cli")
    from nodes.show import tools  # the CLI runs nodes' code like `likeness node` does

    try:
        ack = asyncio.run(tools.command(settings, args.action, operator=args.operator, wait_s=args.wait))
    except BusTimeout as error:
        _fail(f"show: {error}", 2)
    if ack is None:
        _fail(f"show: no show node answered within {args.wait:g} s (is it running? see likeness status)", 2)
    print("accepted" if ack.accepted else f"refused: {ack.reason}")
    raise SystemExit(0 if ack.accepted else 1)


def _archive(args: argparse.Namespace, rest: list[str]) -> None:
    settings = settings_or_exit(args.config)  # no logging set-up: the export may go to stdout
    from nodes.show import tools

    try:
        count = tools.export_archive(settings, args.format, args.out)
    except (OSError, sqlite3.Error) as error:
        _fail(f"archive export: {error}")
    if args.out is not None:
        print(f"wrote {count} turns to {args.out}", file=sys.stderr)


def _devices(args: argparse.Namespace, rest: list[str]) -> None:
    from . import audio

    _settings(args, "devices")
    try:
        devices = audio.input_devices()
    except audio.AudioError as error:
        _fail(str(error))
    if not devices:
        print("no sound device can record here (no sound card, or none PortAudio can open)")
    for device in devices:
        print(f"{device['index']:>3}  {device['name']}  ({device['channels']} ch, {device['rate_hz']} Hz)")


def _list_models(models_dir: Path, *, configured: str) -> None:
    installed = models.installed_models(models_dir)
    if installed:
        width = max(len(model.name) for model in installed) + 2
        for model in installed:
            mark = "  (asr.vosk_model)" if model.name == configured else ""
            print(f"{model.name:<{width}}{models.human_size(model.size):>10}  {model.path}{mark}")
    else:
        print(f"no models installed in {models_dir}")
    available = {name: entry for name, entry in models.CATALOG.items() if name not in {m.name for m in installed}}
    if available:
        print("\nin the catalog (likeness models install NAME):")
        width = max(len(name) for name in available) + 2
        for name, entry in available.items():
            print(f"{name:<{width}}{models.human_size(entry.size):>10}  {entry.about}")


if __name__ == "__main__":  # `python -m installation.cli` as well as `python -m installation`
    main()
