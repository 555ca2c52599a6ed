"""A burnt-in timecode drawn with ffmpeg's drawbox filter, as a seven-segment display.

The cluster's ffmpeg build (imageio-ffmpeg's static one) has no drawtext, so no fonts: each
digit is seven boxes, each lit by an ``enable`` expression on the frame number ``n``. The
expressions make the display count on by itself through a segment, from the timecode of the
segment's first frame.
"""

from __future__ import annotations

from dataclasses import dataclass

# Which segments light for each digit: a top, b top right, c bottom right, d bottom,
# e bottom left, f top left, g middle.
DIGIT_SEGMENTS = {
    0: "abcdef", 1: "bc", 2: "abdeg", 3: "abcdg", 4: "bcfg",
    5: "acdfg", 6: "acdefg", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}  # fmt: skip


@dataclass(frozen=True)
class Layout:
    """Where the display sits in a frame of ``width`` x ``height``, bottom centre."""

    width: int
    height: int

    @property
    def digit_height(self) -> int:
        return max(14, self.height // 18) // 2 * 2

    @property
    def digit_width(self) -> int:
        return self.digit_height // 2

    @property
    def stroke(self) -> int:
        return max(2, self.digit_height // 8)

    @property
    def pitch(self) -> int:
        return self.digit_width + self.stroke * 2  # a digit and the gap after it

    def digit_x(self, position: int) -> int:
        """Left edge of digit ``position`` (0-7); a colon's room after every second digit."""
        total = 8 * self.pitch + 3 * self.pitch // 2
        left = (self.width - total) // 2
        return left + position * self.pitch + (position // 2) * (self.pitch // 2)

    @property
    def top(self) -> int:
        return self.height - self.digit_height - self.stroke * 4

    def segment_boxes(self, position: int) -> dict[str, tuple[int, int, int, int]]:
        """Each segment's box (x, y, w, h) for digit ``position``."""
        x, y = self.digit_x(position), self.top
        w, h, t = self.digit_width, self.digit_height, self.stroke
        half = h // 2
        return {
            "a": (x, y, w, t),
            "b": (x + w - t, y, t, half),
            "c": (x + w - t, y + half, t, half),
            "d": (x, y + h - t, w, t),
            "e": (x, y + half, t, half),
            "f": (x, y, t, half),
            "g": (x, y + half - t // 2, w, t),
        }


def digit_expressions(first: int, step: int, rate: int) -> list[str]:
    """ffmpeg expressions for the eight digits HHMMSSFF of frame ``first + n * step``
    counted from 0 (``first`` is the frame count of the segment's first frame)."""
    total = f"({first}+n*{step})"
    fields = [
        f"mod(floor({total}/{rate * 3600}),24)",
        f"mod(floor({total}/{rate * 60}),60)",
        f"mod(floor({total}/{rate}),60)",
        f"mod({total},{rate})",
    ]
    digits = []
    for field in fields:
        digits += [f"floor({field}/10)", f"mod({field},10)"]
    return digits


def filters(width: int, height: int, first: int, step: int, rate: int) -> list[str]:
    """The drawbox filters of the display: a dark panel, the colons, and every segment."""
    layout = Layout(width, height)
    pad = layout.stroke * 2
    left = layout.digit_x(0) - pad
    right = layout.digit_x(7) + layout.digit_width + pad
    out = [
        f"drawbox=x={left}:y={layout.top - pad}:w={right - left}:"
        f"h={layout.digit_height + 2 * pad}:color=black@0.8:t=fill"
    ]
    for gap in (2, 4, 6):  # colons between the pairs
        cx = layout.digit_x(gap) - layout.pitch // 2 + layout.stroke // 2
        for fraction in (3, 7):
            cy = layout.top + layout.digit_height * fraction // 10
            out.append(
                f"drawbox=x={cx}:y={cy}:w={layout.stroke}:h={layout.stroke}:color=white:t=fill"
            )
    for position, value in enumerate(digit_expressions(first, step, rate)):
        for segment, (x, y, w, h) in layout.segment_boxes(position).items():
            lit = [str(d) for d, segments in DIGIT_SEGMENTS.items() if segment in segments]
            condition = "+".join(f"eq({value}\\,{d})" for d in lit)
            out.append(f"drawbox=x={x}:y={y}:w={w}:h={h}:color=white:t=fill:enable='{condition}'")
    return out


def parse(text: str, rate: int) -> int:
    """``HH:MM:SS:FF`` -> a frame count at ``rate``. Raises ValueError."""
    parts = text.split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"timecode {text!r} is not HH:MM:SS:FF")
    hours, minutes, seconds, frames = (int(p) for p in parts)
    if minutes >= 60 or seconds >= 60 or frames >= rate:
        raise ValueError(f"timecode {text!r} is out of range at {rate} fps")
    return ((hours * 60 + minutes) * 60 + seconds) * rate + frames
