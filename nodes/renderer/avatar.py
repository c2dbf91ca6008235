"""The procedural avatar: a stylized head drawn by the renderer when there is no video for a state.

Its mouth opens with the loudness of the voice; it blinks, a ring pulses while the visitor
speaks, and dots turn while it thinks. Sizes follow the screen; on a screen that is not 16:9
the head keeps its shape and stays centred.
"""

from __future__ import annotations

import math

import pygame

from .scene import AvatarState

BACKGROUND_TOP = (10, 14, 26)
BACKGROUND_BOTTOM = (30, 38, 58)
SHOULDERS = (52, 62, 86)
HEAD = (88, 106, 138)
FACE = (104, 124, 158)
EYE = (236, 240, 246)
PUPIL = (18, 22, 32)
MOUTH = (22, 10, 18)
LIPS = (150, 88, 104)
ACCENT = (70, 205, 190)
BLINK_EVERY_S = 4.3
BLINK_S = 0.12


class Geometry:
    """Where the parts of the head are on a screen of `size`."""

    def __init__(self, size: tuple[int, int]) -> None:
        width, height = size
        unit = min(height, width * 9 / 16)  # the head's scale: a 16:9 stage inside any screen
        self.size = size
        self.center = (width // 2, int(height * 0.43))
        self.head = (int(unit * 0.40), int(unit * 0.52))
        cx, cy = self.center
        head_w, head_h = self.head
        self.eye_y = cy - int(head_h * 0.06)
        self.eye_dx = int(head_w * 0.21)
        self.eye = (int(head_w * 0.17), int(head_h * 0.075))
        self.mouth_center = (cx, cy + int(head_h * 0.25))
        self.mouth_width = int(head_w * 0.36)
        self.mouth_closed = max(2, int(head_h * 0.012))
        self.mouth_open = int(head_h * 0.13)

    def mouth_box(self) -> pygame.Rect:
        """The region the mouth can take up, fully open."""
        box = pygame.Rect(0, 0, int(self.mouth_width * 1.1), self.mouth_open + 8)
        box.center = self.mouth_center
        return box


def mouth_box(size: tuple[int, int]) -> pygame.Rect:
    """The region of a `size` screen where the procedural avatar's mouth opens and closes."""
    return Geometry(size).mouth_box()


class ProceduralAvatar:
    """Draws the avatar in a state, its mouth open by `loudness` (0..1)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.geometry = Geometry(size)
        self._background = self._draw_background(size)

    def draw(self, target: pygame.Surface, state: AvatarState, loudness: float, now: float) -> None:
        target.blit(self._background, (0, 0))
        if state == "listening":
            self._draw_ring(target, now)
        self._draw_eyes(target, now, state)
        self._draw_mouth(target, loudness if state == "speaking" else 0.0)
        if state == "thinking":
            self._draw_dots(target, now)

    def _draw_background(self, size: tuple[int, int]) -> pygame.Surface:
        """The still parts, drawn once: a gradient, the shoulders and the head."""
        width, height = size
        surface = pygame.Surface(size)
        for y in range(height):
            mix = y / max(1, height - 1)
            color = [round(a + (b - a) * mix) for a, b in zip(BACKGROUND_TOP, BACKGROUND_BOTTOM, strict=True)]
            pygame.draw.line(surface, color, (0, y), (width, y))
        geometry = self.geometry
        cx, cy = geometry.center
        head_w, head_h = geometry.head
        shoulders = pygame.Rect(0, 0, int(head_w * 2.6), int(head_h * 0.9))
        shoulders.midtop = (cx, cy + int(head_h * 0.42))
        pygame.draw.ellipse(surface, SHOULDERS, shoulders)
        # On a screen taller than 16:9 the body must still reach the bottom edge.
        pygame.draw.rect(surface, SHOULDERS, (shoulders.left, shoulders.centery, shoulders.width, height))
        neck = pygame.Rect(0, 0, int(head_w * 0.42), int(head_h * 0.4))
        neck.midtop = (cx, cy + int(head_h * 0.3))
        pygame.draw.rect(surface, SHOULDERS, neck)
        head = pygame.Rect(0, 0, head_w, head_h)
        head.center = geometry.center
        pygame.draw.ellipse(surface, HEAD, head)
        face = head.inflate(-int(head_w * 0.16), -int(head_h * 0.14))
        face.top += int(head_h * 0.05)
        pygame.draw.ellipse(surface, FACE, face)
        return surface

    def _draw_eyes(self, target: pygame.Surface, now: float, state: AvatarState) -> None:
        geometry = self.geometry
        eye_w, eye_h = geometry.eye
        blinking = (now % BLINK_EVERY_S) < BLINK_S
        height = max(2, eye_h // 6) if blinking else eye_h
        # The eyes drift a little when idle and look up and aside while thinking.
        look_x = int(math.sin(now * 0.7) * eye_w * 0.12) if state == "idle" else 0
        look_y = -eye_h // 4 if state == "thinking" else 0
        for side in (-1, 1):
            center = (geometry.center[0] + side * geometry.eye_dx, geometry.eye_y)
            eye = pygame.Rect(0, 0, eye_w, height)
            eye.center = center
            pygame.draw.ellipse(target, EYE, eye)
            if not blinking:
                pupil = pygame.Rect(0, 0, eye_w // 3, eye_h * 2 // 3)
                pupil.center = (center[0] + look_x + (eye_w // 6 if state == "thinking" else 0), center[1] + look_y)
                pygame.draw.ellipse(target, PUPIL, pupil)

    def _draw_mouth(self, target: pygame.Surface, loudness: float) -> None:
        geometry = self.geometry
        loudness = min(1.0, max(0.0, loudness))
        height = geometry.mouth_closed + int((geometry.mouth_open - geometry.mouth_closed) * loudness)
        width = int(geometry.mouth_width * (1.0 - 0.25 * loudness))  # rounder as it opens
        mouth = pygame.Rect(0, 0, width, height)
        mouth.center = geometry.mouth_center
        if height <= geometry.mouth_closed:
            pygame.draw.rect(target, LIPS, mouth, border_radius=height // 2)
            return
        pygame.draw.ellipse(target, LIPS, mouth.inflate(6, 6))
        pygame.draw.ellipse(target, MOUTH, mouth)

    def _draw_ring(self, target: pygame.Surface, now: float) -> None:
        geometry = self.geometry
        pulse = 0.5 + 0.5 * math.sin(now * 4.0)
        head_w, head_h = geometry.head
        ring = pygame.Rect(0, 0, int(head_w * (1.12 + 0.04 * pulse)), int(head_h * (1.08 + 0.04 * pulse)))
        ring.center = geometry.center
        pygame.draw.ellipse(target, ACCENT, ring, max(3, head_h // 80))

    def _draw_dots(self, target: pygame.Surface, now: float) -> None:
        geometry = self.geometry
        head_w, head_h = geometry.head
        radius = max(4, head_h // 40)
        x0 = geometry.center[0] + int(head_w * 0.62)
        y0 = geometry.center[1] - int(head_h * 0.42)
        for index in range(3):
            lift = math.sin(now * 5.0 - index * 0.9)
            color = ACCENT if lift > 0.3 else SHOULDERS
            center = (x0 + index * radius * 3, y0 - int(max(0.0, lift) * radius))
            pygame.draw.circle(target, color, center, radius)
