"""Benchmark the typed bus against raw pyzmq through the same broker.

Run from the repository root:

    python benchmarks/bus.py            # 5 rounds, about a minute on 2 cores
    python benchmarks/bus.py --quick    # one short round (smoke test)
    python benchmarks/bus.py --profile /tmp/prof   # also cProfile every subscriber

Raw pyzmq and installation.bus.Bus each send 200-byte messages through one Broker, and each is measured
for flood throughput (the publisher flat out; rate = received / (t_last - t_first) at the subscriber,
and the fraction of what was sent that arrived), one-way latency at 1,000 msg/s (p50, p99, max of
time.monotonic() at arrival minus the stamp in the message), and the CPU time per message of the
publisher's and the subscriber's thread, which moves much less than the rates when the machine is busy
(the load average is printed at the start and the end). Broker, publisher and subscriber are separate
processes; a warm-up handshake defeats ZeroMQ's slow joiner and end markers close each run. Rounds
alternate raw and typed; the table shows medians; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing as mp
import os
import queue
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

# -- child processes: broker, publisher, subscriber (raw pyzmq or the typed bus) ---------


def _typed_text(flag: str) -> str:
    """AsrPartial text that makes the encoded JSON frame ~MESSAGE_BYTES long."""
    from installation.messages import AsrPartial, encode

    # A realistic seq (5 digits) so the size holds through most of a run.
    empty = encode(AsrPartial(source="kiosk", text=""), source="bench", sid="0" * 8, seq=10000)
    length = max(1, MESSAGE_BYTES - len(empty[1]))
    filler = "and then the visitor said something about the weather today "
    return (flag + filler * (length // len(filler) + 1))[:length]


def _percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000, "max_ms": max(values) * 1000}


def _paced(period: float, duration: float):
    """Yield once per slot t0 + i*period (no drift), sleeping until each slot."""
    t0 = time.monotonic() + period
    for i in range(round(duration / period)):
        delay = t0 + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield


def _send_until(send, event, period: float, seconds: float) -> None:
    """Call `send()` every `period` until `event` is set: warm-ups until the subscriber has seen one
    (ZeroMQ's slow joiner), end markers until it is done (a few may drop on a full queue)."""
    deadline = time.monotonic() + seconds
    while not event.wait(period):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{event} not set within {seconds:g} s")
        send()


class _Tally:
    """A subscriber's record. Per message the loops do the same for raw and typed: compare the
    flag with the current one, `counts[flag] += 1`, `t_last = t`. `turn` runs only when the flag
    changes: it answers the warm-up and notes time and CPU time at the first measured message
    and at the end marker."""

    def __init__(self, got_warm) -> None:
        self.counts: dict[str | bytes, int] = {}
        self.measure: str | bytes | None = None
        self.t_first = self.t_last = self.cpu_first = self.cpu_last = 0.0
        self._got_warm = got_warm

    def turn(self, flag: str | bytes, t: float, t_last: float) -> bool:
        """The flag changed to `flag` at `t` (the message before came at `t_last`); True at the end."""
        name = flag if isinstance(flag, str) else flag.decode()
        if name == END:
            self.t_last, self.cpu_last = t_last, time.thread_time()
            return True
        self.counts.setdefault(flag, 0)
        if name == WARM:
            self._got_warm.set()
        elif self.measure is None:
            self.measure, self.t_first, self.cpu_first = flag, t, time.thread_time()
        return False

    def result(self, latencies: list[float] | None) -> dict[str, Any]:
        received = self.counts.get(self.measure, 0)
        seconds = self.t_last - self.t_first
        outcome = {
            "received": received,
            "msgs_per_s": received / seconds if received and seconds > 0 else 0.0,
            "sub_cpu_us": (self.cpu_last - self.cpu_first) / received * 1e6 if received else 0.0,
        }
        return outcome if latencies is None else {**outcome, **_percentiles(latencies)}


def broker_main(settings, ready, stop) -> None:
    from installation.broker import Broker

    broker = Broker(settings)
    broker.start()
    ready.set()
    try:
        stop.wait()
    finally:
        broker.stop()


def _child(main, *args) -> None:
    """A process's target: run the coroutine function `main` (a publisher or subscriber)."""
    asyncio.run(main(*args))


async def _publisher(settings, mode: str, test: str, plan: dict[str, float], events, results) -> None:
    if mode == "raw":
        import zmq

        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.linger, pub.sndhwm = 0, settings.send_hwm
        pub.connect(settings.publish_url)
        topic, send, pack, now = TOPIC.encode(), pub.send_multipart, _RAW_HEADER.pack, time.monotonic

        def sender(flag: str):
            flag_byte = flag.encode()
            return lambda: send([topic, pack(flag_byte, now()) + _RAW_PAD])

        close = pub.close
    else:
        from installation.bus import Bus
        from installation.messages import AsrPartial

        bus = Bus(settings, name="bench", topics=())
        await bus.connect()
        publish = bus.publish

        def sender(flag: str):
            # The same payload object each time, as a node re-publishing a caption would: the
            # measured cost is the bus's (envelope, JSON, send), not building the payload.
            payload = AsrPartial(source="kiosk", text=_typed_text(flag))
            return lambda: publish(payload)

        close = bus.close
    sub_ready, got_warm, sub_done = events
    sub_ready.wait(30)
    _send_until(sender(WARM), got_warm, 0.005, 20)
    send_one, sent, clock = sender(MEASURE), 0, time.monotonic
    cpu_first = time.thread_time()
    if test == "flood":
        end = clock() + plan["seconds"]
        while clock() < end:
            for _ in range(500):
                send_one()
            sent += 500
    else:
        for _ in _paced(1.0 / plan["rate"], plan["seconds"]):
            send_one()
            sent += 1
    cpu_us = (time.thread_time() - cpu_first) / sent * 1e6
    _send_until(sender(END), sub_done, 0.002, 60)
    results.put(("pub", {"sent": sent, "pub_cpu_us": cpu_us}))
    close()


def _raw_loop(sub, tally: _Tally, keep: bool) -> list[float]:
    recv, now, unpack = sub.recv_multipart, time.monotonic, _RAW_HEADER.unpack_from
    counts, turn = tally.counts, tally.turn
    current, t_last, latencies = None, 0.0, []
    while True:
        frames = recv()
        t = now()
        flag = frames[1][:1]
        if flag != current:
            if turn(flag, t, t_last):
                return latencies
            current = flag
        counts[flag] += 1
        t_last = t
        if keep and flag == b"M":
            latencies.append(t - unpack(frames[1])[1])


async def _typed_loop(bus, tally: _Tally, keep: bool) -> list[float]:
    now, counts, turn = time.monotonic, tally.counts, tally.turn
    current, t_last, latencies = None, 0.0, []
    async for batch in bus.batches():  # as a node reads
        for message in batch:
            t = now()
            flag = message.payload.text[0]
            if flag != current:
                if turn(flag, t, t_last):
                    return latencies
                current = flag
            counts[flag] += 1
            t_last = t
            if keep and flag == MEASURE:
                latencies.append(t - message.mono)
    return latencies


async def _subscriber(settings, mode: str, test: str, events, results, profile: str | None) -> None:
    sub_ready, got_warm, sub_done = events
    tally, keep = _Tally(got_warm), test == "latency"
    if mode == "raw":
        import zmq

        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.linger, sub.rcvhwm, sub.rcvtimeo = 0, settings.receive_hwm, int(_PROCESS_TIMEOUT_S * 1000)
        sub.subscribe(TOPIC.encode())
        sub.connect(settings.subscribe_url)
    else:
        import logging

        from installation.bus import Bus

        # A flood drops at the HWMs by design; the losses are counted here, not logged one by one.
        logging.getLogger("installation.bus").setLevel(logging.ERROR)
        bus = Bus(settings, name="benchsub", topics=(TOPIC,))
        await bus.connect()
    profiler = cProfile.Profile() if profile else contextlib.nullcontext()
    try:
        with profiler:
            sub_ready.set()
            if mode == "raw":
                latencies = _raw_loop(sub, tally, keep)
            else:
                latencies = await asyncio.wait_for(_typed_loop(bus, tally, keep), _PROCESS_TIMEOUT_S)
    finally:
        sub_done.set()
        if profile:
            profiler.dump_stats(profile)
    outcome = tally.result(latencies if keep else None)
    if mode == "raw":
        sub.close()
    else:
        outcome["lost"] = bus.counters.lost
        bus.close(linger_s=0)
    results.put(("sub", outcome))


# -- orchestration ----------------------------------------------------------------------


def _free_ports() -> tuple[int, int]:
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return a.getsockname()[1], b.getsockname()[1]


def _stop(process) -> None:
    """Give `process` a few seconds to end, then kill it."""
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join(2)


def _run_one(settings, mode: str, test: str, plan: dict[str, float], profile: str | None) -> dict[str, Any]:
    events = (_CTX.Event(), _CTX.Event(), _CTX.Event())  # subscriber ready, warm-up seen, subscriber done
    results = _CTX.Queue()
    sub_args = (_subscriber, settings, mode, test, events, results, profile)
    pub_args = (_publisher, settings, mode, test, plan, events, results)
    sub = _CTX.Process(target=_child, args=sub_args, name=f"{mode}-{test}-sub", daemon=True)
    pub = _CTX.Process(target=_child, args=pub_args, name=f"{mode}-{test}-pub", daemon=True)
    outcome: dict[str, Any] = {}
    try:
        sub.start()
        pub.start()
        deadline = time.monotonic() + _PROCESS_TIMEOUT_S + plan["seconds"]
        while len(outcome) < 2:
            try:
                role, data = results.get(timeout=1.0)
            except queue.Empty:
                for process in (sub, pub):
                    if process.exitcode not in (None, 0):
                        raise RuntimeError(f"{process.name} exited with {process.exitcode}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{mode} {test}: no result in time") from None
                continue
            outcome[role] = data
    finally:
        for process in (pub, sub):
            _stop(process)
        results.close()
    merged = {**outcome["sub"], **outcome["pub"]}
    merged["received_fraction"] = merged["received"] / merged["sent"] if merged["sent"] else 0.0
    return merged


DETAIL = {  # one line per run
    "flood": "{msgs_per_s:>10,.0f} msg/s  received {received:,}/{sent:,} ({received_fraction:.1%})  "
    "CPU us/msg pub {pub_cpu_us:.2f} sub {sub_cpu_us:.2f}",
    "latency": "p50 {p50_ms:.3f} ms  p99 {p99_ms:.3f} ms  max {max_ms:.3f} ms  n={received}/{sent}",
}
ROWS = [  # label, summary key (after "<mode>_"), test, key in its results, digits kept, format
    ("throughput, flood, msg/s", "msgs_per_s", "flood", "msgs_per_s", None, "{:,.0f}"),
    ("  received fraction", "received_fraction", "flood", "received_fraction", 4, "{:.1%}"),
    ("  publisher CPU, us/msg", "pub_cpu_us", "flood", "pub_cpu_us", 2, "{:.2f}"),
    ("  subscriber CPU, us/msg", "sub_cpu_us", "flood", "sub_cpu_us", 2, "{:.2f}"),
    ("latency p50, ms", "p50_ms", "latency", "p50_ms", 4, "{:.3f}"),
    ("latency p99, ms", "p99_ms", "latency", "p99_ms", 4, "{:.3f}"),
    ("latency max, ms", "max_ms", "latency", "max_ms", 4, "{:.3f}"),
    ("  subscriber CPU at 1 kHz, us/msg", "latency_sub_cpu_us", "latency", "sub_cpu_us", 2, "{:.2f}"),
]


def _report(summary: dict[str, Any], modes: list[str], rounds: int) -> None:
    both = len(modes) == 2
    width = max(len(row[0]) for row in ROWS) + 2
    print()
    print(f"{f'median of {rounds} round(s)':<{width}}" + "".join(f"{m:>12}" for m in modes) + ("   typed/raw" * both))
    for label, key, *_, fmt in ROWS:
        cells = [summary[f"{m}_{key}"] for m in modes]
        line = f"{label:<{width}}" + "".join(f"{fmt.format(c):>12}" for c in cells)
        if both and cells[0]:
            line += f"   {cells[1] / cells[0]:>9.2f}"
        print(line)
    if both:
        met = {True: "met", False: "MISSED"}
        print(
            f"targets: throughput >= 0.70x raw: {met[summary['throughput_target_met']]} "
            f"({summary['throughput_ratio']:.2f}); p99 <= 1.5x raw: {met[summary['p99_target_met']]} "
            f"({summary['p99_ratio']:.2f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round (smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each measurement (default 5, quick 1)")
    parser.add_argument("--flood-seconds", type=float, default=None, help="flood time (default 1.5, quick 0.5)")
    parser.add_argument("--latency-seconds", type=float, default=None, help="paced run time (default 3, quick 1)")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced rate for latency, msg/s")
    parser.add_argument("--hwm", type=int, default=10000, help="send and receive HWM, raw and typed alike")
    parser.add_argument("--only", choices=("raw", "typed"), help="measure one side only (no ratios)")
    parser.add_argument("--profile", metavar="DIR", help="cProfile each subscriber into DIR/<mode>-<test>-<round>.prof")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    plans = {
        "flood": {"seconds": args.flood_seconds or (0.5 if args.quick else 1.5)},
        "latency": {"seconds": args.latency_seconds or (1.0 if args.quick else 3.0), "rate": args.rate},
    }
    modes = [args.only] if args.only else ["raw", "typed"]
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)

    from installation.messages import AsrPartial, encode
    from installation.settings import load_settings

    pub_port, sub_port = _free_ports()
    env = {
        "LIKENESS_BUS__PUBLISH_URL": f"tcp://127.0.0.1:{pub_port}",
        "LIKENESS_BUS__SUBSCRIBE_URL": f"tcp://127.0.0.1:{sub_port}",
        "LIKENESS_BUS__SEND_HWM": str(args.hwm),
        "LIKENESS_BUS__RECEIVE_HWM": str(args.hwm),
    }
    settings = load_settings(environ=env).settings.bus

    frame = encode(AsrPartial(source="kiosk", text=_typed_text(MEASURE)), source="bench", sid="0" * 8, seq=10000)
    load_start = os.getloadavg()[0]
    print(
        f"bus benchmark: {rounds} round(s); flood {plans['flood']['seconds']:g} s; latency "
        f"{plans['latency']['seconds']:g} s at {args.rate:g} msg/s; HWM {args.hwm}, typed frame {len(frame[1])} B, "
        f"raw body {MESSAGE_BYTES} B, {os.cpu_count()} CPU(s), load average {load_start:.2f}",
        flush=True,
    )

    ready, stop = _CTX.Event(), _CTX.Event()
    broker = _CTX.Process(target=broker_main, args=(settings, ready, stop), name="broker", daemon=True)
    data: dict[str, dict[str, list[dict[str, Any]]]] = {m: {test: [] for test in plans} for m in modes}
    try:
        broker.start()
        if not ready.wait(30):
            raise RuntimeError("the broker did not start")
        for index in range(rounds):
            for test, plan in plans.items():
                for mode in modes if index % 2 == 0 else modes[::-1]:
                    profile = os.path.join(args.profile, f"{mode}-{test}-{index}.prof") if args.profile else None
                    r = _run_one(settings, mode, test, plan, profile)
                    data[mode][test].append(r)
                    lost = f"  lost {r['lost']:,}" if "lost" in r else ""
                    print(f"  round {index + 1} {mode:<5} {test:<7} {DETAIL[test].format(**r)}{lost}", flush=True)
    finally:
        stop.set()
        _stop(broker)

    summary: dict[str, Any] = {
        "rounds": rounds,
        "hwm": args.hwm,
        "message_bytes": MESSAGE_BYTES,
        "typed_frame_bytes": len(frame[1]),
        "rate_hz": args.rate,
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    for mode in modes:
        for _, name, test, key, digits, _ in ROWS:
            summary[f"{mode}_{name}"] = round(statistics.median(r[key] for r in data[mode][test]), digits)
    if len(modes) == 2:
        summary["throughput_ratio"] = round(summary["typed_msgs_per_s"] / summary["raw_msgs_per_s"], 3)
        summary["p50_ratio"] = round(summary["typed_p50_ms"] / summary["raw_p50_ms"], 3)
        summary["p99_ratio"] = round(summary["typed_p99_ms"] / summary["raw_p99_ms"], 3)
        summary["throughput_target_met"] = summary["throughput_ratio"] >= 0.70
        summary["p99_target_met"] = summary["p99_ratio"] <= 1.5
    _report(summary, modes, rounds)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
