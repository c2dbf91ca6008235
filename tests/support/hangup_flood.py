"""Stop a broker again and again just as a flooded subscriber hangs up: exits 0 if it survives.

Run in its own process (`python -m tests.support.hangup_flood ROUNDS`), because what it
guards against is libzmq aborting the whole process.
"""

from __future__ import annotations

import asyncio
import sys

from installation.bus import Bus
from installation.messages import AudioFrame
from installation.testing import private_environ, running_broker, settings_from


async def one_round() -> None:
    settings = settings_from(private_environ(BUS__SEND_HWM="10", BUS__RECEIVE_HWM="10"))
    with running_broker(settings):
        listener = Bus(settings.bus, name="listener", topics=("audio.in.",))
        mic = Bus(settings.bus, name="mic", topics=("audio.in.",))  # hears its own flood, never reads it
        try:
            await listener.connect()
            await mic.connect()
            for index in range(2000):
                mic.publish(AudioFrame(source="kiosk", index=index), data=bytes(640))
            await listener.receive(1)
        finally:
            mic.close()
            listener.close()


async def main(rounds: int) -> None:
    for _ in range(rounds):
        await one_round()
    print(f"{rounds} rounds, the broker stopped cleanly every time")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
