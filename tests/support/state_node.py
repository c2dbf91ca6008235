"""A small node for tests: keeps a latched show.state and answers questions by echoing them."""

from __future__ import annotations

from collections.abc import Sequence

from installation.messages import Ask, BotReply, Message, ShowCommand, ShowState
from installation.node import Node, run_node


class StateNode(Node):
    name = "state"
    topics = ("show.command", "bot.ask")

    async def start(self) -> None:
        self.bus.publish(ShowState(phase="preshow"))

    async def handle(self, message: Message) -> None:
        match message.payload:
            case ShowCommand(command="go"):
                self.bus.publish(ShowState(phase="interview", floor="kiosk"))
            case ShowCommand(command="blackout"):
                raise RuntimeError("blackout is not wired in this test node")
            case Ask(text=text):
                self.bus.publish(BotReply(text=f"you asked: {text}", persona="test", confidence=1.0),
                                 turn_id=message.turn_id)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    run_node(StateNode, argv)
