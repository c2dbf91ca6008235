"""Benchmark the typed bus against raw pyzmq through the same broker.

Run from the repository root:

    python benchmarks/bus.py            # full run: 3 rounds, under ~2 minutes on 2 cores
    python benchmarks/bus.py --quick    # one short round (smoke test)

Two figures, each for raw pyzmq and for installation.bus.Bus, through one Broker:

1. Throughput: a publisher sends 200-byte events as fast as it can for a fixed time; the
   subscriber counts what arrives; rate = received / (t_last - t_first).
2. One-way latency at 1,000 msg/s: a paced publisher stamps time.monotonic() into every
   message; the subscriber records time.monotonic() - stamp; p50 and p99.

The broker, every publisher and every subscriber run in their own processes (a subscriber
thread beside a busy publisher starves on the GIL). Before measuring, the publisher sends
warm-up messages until the subscriber reports that one arrived, so ZeroMQ's slow joiner
cannot eat the first measured messages. Rounds alternate raw and typed so noise hits both;
the table shows the median of the rounds. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MESSAGE_BYTES = 200
TOPIC = "asr.partial"
WARM, MEASURE, END = "W", "M", "E"
_RAW_HEADER = struct.Struct("<cd")  # flag, send time (time.monotonic())
_RAW_PAD = bytes(MESSAGE_BYTES - _RAW_HEADER.size)
_PROCESS_TIMEOUT_S = 90.0
_CTX = mp.get_context("spawn")

# -- helpers shared by the child processes ----------------------------------------------


def _settings(env: dict[str, str]) -> Any:
    from installation.settings import load_settings

    return load_settings(environ=env).settings


def _typed_text(flag: str, bus_name: str = "bench") -> str:
    """AsrPartial text that makes the encoded JSON frame ~MESSAGE_BYTES long."""
    from installation.messages import AsrPartial, encode

    # A realistic seq (5 digits) so the size holds through most of a run.
    empty = encode(AsrPartial(source="kiosk", text=""), source=bus_name, sid="0" * 8, seq=10000)
    length = max(1, MESSAGE_BYTES - len(empty[1]))
    filler = "and then the visitor said something about the weather today "
    return (flag + filler * (length // len(filler) + 1))[:length]


def _raw_body(flag: bytes) -> bytes:
    return _RAW_HEADER.pack(flag, time.monotonic()) + _RAW_PAD


def _percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000, "max_ms": max(values) * 1000}


def _paced(period: float, duration: float):
    """Yield once per slot t0 + i*period (no drift), sleeping until each slot."""
    t0 = time.monotonic() + period
    i = 0
    while True:
        slot = t0 + i * period
        if slot - t0 >= duration:
            return
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield
        i += 1


def _handshake(send_warm, got_warm) -> None:
    """Send warm-up messages until the subscriber has seen one (slow joiner)."""
    deadline = time.monotonic() + 20
    while not got_warm.wait(0.005):
        if time.monotonic() > deadline:
            raise TimeoutError("the subscriber never saw a warm-up message")
        send_warm()


def _finish(send_end, sub_done) -> None:
    """Send end markers until the subscriber says it is done (some may drop on a full queue)."""
    deadline = time.monotonic() + 60
    while not sub_done.wait(0.002):
        if time.monotonic() > deadline:
            return
        send_end()


def _profiled(profile: str | None, run):
    if not profile:
        return run()
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(run)
    finally:
        profiler.dump_stats(profile)


# -- broker -----------------------------------------------------------------------------


def broker_main(env: dict[str, str], ready, stop) -> None:
    from installation.broker import Broker

    broker = Broker(_settings(env).bus)
    broker.start()
    ready.set()
    try:
        stop.wait()
    finally:
        broker.stop()


# -- raw pyzmq --------------------------------------------------------------------------


def raw_publisher(env: dict[str, str], test: str, seconds: float, rate: float, events, results) -> None:
    import zmq

    bus = _settings(env).bus
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub.sndhwm = bus.send_hwm
    pub.connect(bus.publish_url)
    topic = TOPIC.encode()
    sub_ready, got_warm, sub_done = events
    sub_ready.wait(30)
    _handshake(lambda: pub.send_multipart([topic, _raw_body(b"W")]), got_warm)
    sent = 0
    send = pub.send_multipart
    if test == "throughput":
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(500):
                send([topic, _RAW_HEADER.pack(b"M", time.monotonic()) + _RAW_PAD])
            sent += 500
    else:
        for _ in _paced(1.0 / rate, seconds):
            send([topic, _RAW_HEADER.pack(b"M", time.monotonic()) + _RAW_PAD])
            sent += 1
    _finish(lambda: pub.send_multipart([topic, _raw_body(b"E")]), sub_done)
    results.put(("pub", {"sent": sent}))
    pub.close()
    ctx.term()


def raw_subscriber(env: dict[str, str], test: str, events, results, profile: str | None) -> None:
    import zmq

    bus = _settings(env).bus
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = bus.receive_hwm
    sub.rcvtimeo = int(_PROCESS_TIMEOUT_S * 1000)
    sub.subscribe(TOPIC.encode())
    sub.connect(bus.subscribe_url)
    sub_ready, got_warm, sub_done = events

    def run() -> dict[str, Any]:
        recv, now, unpack = sub.recv_multipart, time.monotonic, _RAW_HEADER.unpack_from
        count, t_first, t_last = 0, 0.0, 0.0
        latencies: list[float] = []
        sub_ready.set()
        while True:
            frames = recv()
            t = now()
            flag, sent_at = unpack(frames[1])
            if flag == b"M":
                if test == "throughput":
                    if not count:
                        t_first = t
                    t_last = t
                    count += 1
                else:
                    latencies.append(t - sent_at)
            elif flag == b"W":
                got_warm.set()
            else:
                break
        if test == "throughput":
            return {"received": count, "seconds": t_last - t_first}
        return {"received": len(latencies), **_percentiles(latencies)}

    try:
        outcome = _profiled(profile, run)
    finally:
        sub_done.set()
    results.put(("sub", outcome))
    sub.close()
    ctx.term()


# -- typed bus --------------------------------------------------------------------------


def typed_publisher(env: dict[str, str], test: str, seconds: float, rate: float, events, results) -> None:
    asyncio.run(_typed_publisher(env, test, seconds, rate, events, results))


async def _typed_publisher(env, test, seconds, rate, events, results) -> None:
    from installation.bus import Bus
    from installation.messages import AsrPartial

    bus = Bus(_settings(env).bus, name="bench", topics=())
    await bus.connect()
    sub_ready, got_warm, sub_done = events
    sub_ready.wait(30)
    warm, measure, end_ = (AsrPartial(source="kiosk", text=_typed_text(flag)) for flag in (WARM, MEASURE, END))
    _handshake(lambda: bus.publish(warm), got_warm)
    sent = 0
    publish = bus.publish
    # The same payload object each time, as a node re-publishing a caption would: the
    # measured cost is the bus's (envelope, JSON, send), not building the payload.
    if test == "throughput":
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(500):
                publish(measure)
            sent += 500
    else:
        for _ in _paced(1.0 / rate, seconds):
            publish(measure)
            sent += 1
    _finish(lambda: bus.publish(end_), sub_done)
    results.put(("pub", {"sent": sent}))
    bus.close()


def typed_subscriber(env: dict[str, str], test: str, events, results, profile: str | None) -> None:
    asyncio.run(_typed_subscriber(env, test, events, results, profile))


async def _typed_subscriber(env, test, events, results, profile) -> None:
    from installation.bus import Bus

    bus = Bus(_settings(env).bus, name="benchsub", topics=(TOPIC,))
    await bus.connect()
    sub_ready, got_warm, sub_done = events
    count, t_first, t_last = 0, 0.0, 0.0
    latencies: list[float] = []

    async def consume() -> None:
        nonlocal count, t_first, t_last
        now = time.monotonic
        sub_ready.set()
        async for message in bus.messages():
            t = now()
            flag = message.payload.text[0]
            if flag == MEASURE:
                if test == "throughput":
                    if not count:
                        t_first = t
                    t_last = t
                    count += 1
                else:
                    latencies.append(t - message.mono)
            elif flag == WARM:
                got_warm.set()
            elif flag == END:
                return

    async def run() -> None:
        await asyncio.wait_for(consume(), _PROCESS_TIMEOUT_S)

    try:
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
            try:
                await run()
            finally:
                profiler.disable()
                profiler.dump_stats(profile)
        else:
            await run()
    finally:
        sub_done.set()
    lost = bus.counters.lost
    if test == "throughput":
        outcome = {"received": count, "seconds": t_last - t_first, "lost": lost}
    else:
        outcome = {"received": len(latencies), "lost": lost, **_percentiles(latencies)}
    results.put(("sub", outcome))
    bus.close(linger_s=0)


# -- orchestration ----------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _stop(process) -> None:
    if process.is_alive():
        process.terminate()
        process.join(2)
    if process.is_alive():
        process.kill()
        process.join(2)


def _run_one(env, mode: str, test: str, seconds: float, rate: float, profile: str | None) -> dict[str, Any]:
    events = (_CTX.Event(), _CTX.Event(), _CTX.Event())
    results = _CTX.Queue()
    sub_target, pub_target = (raw_subscriber, raw_publisher) if mode == "raw" else (typed_subscriber, typed_publisher)
    sub = _CTX.Process(target=sub_target, args=(env, test, events, results, profile), name=f"{mode}-{test}-sub")
    pub = _CTX.Process(target=pub_target, args=(env, test, seconds, rate, events, results), name=f"{mode}-{test}-pub")
    outcome: dict[str, Any] = {}
    try:
        sub.start()
        pub.start()
        deadline = time.monotonic() + _PROCESS_TIMEOUT_S + seconds
        while len(outcome) < 2:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{mode} {test}: no result in time")
            try:
                role, data = results.get(timeout=min(1.0, left))
            except Exception:  # queue.Empty
                for process in (sub, pub):
                    if process.exitcode not in (None, 0):
                        raise RuntimeError(f"{process.name} exited with {process.exitcode}") from None
                continue
            outcome[role] = data
        sub.join(5)
        pub.join(5)
    finally:
        for process in (pub, sub):
            _stop(process)
        results.close()
    merged = {**outcome["sub"], "sent": outcome["pub"]["sent"]}
    if test == "throughput":
        merged["msgs_per_s"] = merged["received"] / merged["seconds"] if merged["seconds"] > 0 else 0.0
        merged["fraction"] = merged["received"] / merged["sent"] if merged["sent"] else 0.0
    return merged


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round (smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each measurement (default 3, quick 1)")
    parser.add_argument("--throughput-seconds", type=float, default=None, help="publishing time (default 2, quick 0.5)")
    parser.add_argument("--latency-seconds", type=float, default=None, help="paced run time (default 3, quick 1)")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced rate for latency, msg/s")
    parser.add_argument("--hwm", type=int, default=10000, help="send and receive HWM, raw and typed alike")
    parser.add_argument("--only", choices=("raw", "typed"), help="measure one side only (no ratios)")
    parser.add_argument("--profile", metavar="DIR", help="cProfile each subscriber into DIR/<mode>-<test>-<round>.prof")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    t_seconds = args.throughput_seconds or (0.5 if args.quick else 2.0)
    l_seconds = args.latency_seconds or (1.0 if args.quick else 3.0)
    modes = [args.only] if args.only else ["raw", "typed"]
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)

    pub_port, sub_port = _free_ports(2)
    env = {
        "LIKENESS_BUS__PUBLISH_URL": f"tcp://127.0.0.1:{pub_port}",
        "LIKENESS_BUS__SUBSCRIBE_URL": f"tcp://127.0.0.1:{sub_port}",
        "LIKENESS_BUS__SEND_HWM": str(args.hwm),
        "LIKENESS_BUS__RECEIVE_HWM": str(args.hwm),
    }
    from installation.messages import AsrPartial, encode

    frame = encode(AsrPartial(source="kiosk", text=_typed_text(MEASURE)), source="bench", sid="0" * 8, seq=10000)
    print(f"bus benchmark: {rounds} round(s), throughput {t_seconds:g} s, latency {l_seconds:g} s at "
          f"{args.rate:g} msg/s, HWM {args.hwm}, typed frame {len(frame[1])} B, raw body {MESSAGE_BYTES} B, "
          f"{os.cpu_count()} CPU(s)", flush=True)  # fmt: skip

    ready, stop = _CTX.Event(), _CTX.Event()
    broker = _CTX.Process(target=broker_main, args=(env, ready, stop), name="broker")
    data: dict[str, dict[str, list[dict[str, Any]]]] = {m: {"throughput": [], "latency": []} for m in modes}
    try:
        broker.start()
        if not ready.wait(30):
            raise RuntimeError("the broker did not start")
        for index in range(rounds):
            order = modes if index % 2 == 0 else modes[::-1]
            for test, seconds in (("throughput", t_seconds), ("latency", l_seconds)):
                for mode in order:
                    profile = os.path.join(args.profile, f"{mode}-{test}-{index}.prof") if args.profile else None
                    result = _run_one(env, mode, test, seconds, args.rate, profile)
                    data[mode][test].append(result)
                    if test == "throughput":
                        detail = (f"{result['msgs_per_s']:>10,.0f} msg/s  received {result['received']:,}"
                                  f"/{result['sent']:,} ({result['fraction']:.1%})")  # fmt: skip
                    else:
                        detail = (f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
                                  f"max {result['max_ms']:.3f} ms  n={result['received']}")  # fmt: skip
                    if "lost" in result:
                        detail += f"  lost {result['lost']:,}"
                    print(f"  round {index + 1} {mode:<5} {test:<10} {detail}", flush=True)
    finally:
        stop.set()
        broker.join(5)
        _stop(broker)

    summary: dict[str, Any] = {"rounds": rounds, "hwm": args.hwm, "message_bytes": MESSAGE_BYTES,
                               "typed_frame_bytes": len(frame[1]), "rate_hz": args.rate}  # fmt: skip
    for mode in modes:
        summary[f"{mode}_msgs_per_s"] = round(_median(data[mode]["throughput"], "msgs_per_s"))
        summary[f"{mode}_received_fraction"] = round(_median(data[mode]["throughput"], "fraction"), 4)
        for key in ("p50_ms", "p99_ms", "max_ms"):
            summary[f"{mode}_{key}"] = round(_median(data[mode]["latency"], key), 4)
    rows = [("throughput, msg/s", "msgs_per_s", "{:,.0f}"), ("received fraction", "received_fraction", "{:.1%}"),
            ("latency p50, ms", "p50_ms", "{:.3f}"), ("latency p99, ms", "p99_ms", "{:.3f}"),
            ("latency max, ms", "max_ms", "{:.3f}")]  # fmt: skip
    if len(modes) == 2:
        summary["throughput_ratio"] = round(summary["typed_msgs_per_s"] / summary["raw_msgs_per_s"], 3)
        summary["p50_ratio"] = round(summary["typed_p50_ms"] / summary["raw_p50_ms"], 3)
        summary["p99_ratio"] = round(summary["typed_p99_ms"] / summary["raw_p99_ms"], 3)
        summary["throughput_target_met"] = summary["throughput_ratio"] >= 0.70
        summary["p99_target_met"] = summary["p99_ratio"] <= 1.5
    print()
    print(f"median of {rounds} round(s)   " + "".join(f"{m:>14}" for m in modes) + ("   typed/raw" if len(modes) == 2 else ""))
    for label, key, fmt in rows:
        cells = [summary[f"{m}_{key}"] for m in modes]
        line = f"{label:<22}" + "".join(f"{fmt.format(c):>14}" for c in cells)
        if len(modes) == 2 and cells[0]:
            line += f"   {cells[1] / cells[0]:>9.2f}"
        print(line)
    if len(modes) == 2:
        print(f"targets: throughput >= 0.70x raw: {'met' if summary['throughput_target_met'] else 'MISSED'}"
              f" ({summary['throughput_ratio']:.2f}); p99 <= 1.5x raw: "
              f"{'met' if summary['p99_target_met'] else 'MISSED'} ({summary['p99_ratio']:.2f})")  # fmt: skip
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
