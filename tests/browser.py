"""A real headless Chromium for the tests that look at pages: screenshots and rendered DOMs.

Chromium comes from the Debian packages (`make system-tools`, which `make test` runs). A test
that needs it skips with the reason when the binary is absent, except under CI=true, where
its absence fails the test: CI must not pass by not looking.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

_NAMES = ("chromium", "chromium-browser")
# Flags that work as root in a container with no display, bus or network wanted.
_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


def chromium() -> str:
    """The Chromium binary; skips the test without one (fails under CI=true)."""
    found = next((path for name in _NAMES if (path := shutil.which(name))), None)
    if found is None:
        reason = "no chromium binary: `make system-tools` installs it from Debian's packages"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    return found


def _run(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    # A fresh profile directory each time: nothing carried over, nothing shared.
    return subprocess.run(
        [chromium(), *_FLAGS, f"--user-data-dir={profile}", *flags, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def rendered_dom(page: Path, profile: Path) -> str:
    """The page's DOM as Chromium has it after loading (its parser, not ours)."""
    return _run(page, profile, "--dump-dom").stdout


@dataclasses.dataclass(frozen=True)
class Image:
    width: int
    height: int
    # Row-major (red, green, blue) per pixel.
    pixels: list[tuple[int, int, int]]

    def at(self, x: int, y: int) -> tuple[int, int, int]:
        return self.pixels[y * self.width + x]

    def rows_with(self, colour: tuple[int, int, int]) -> list[int]:
        """The rows holding at least one pixel of `colour`."""
        return [
            y
            for y in range(self.height)
            if colour in self.pixels[y * self.width : (y + 1) * self.width]
        ]


def screenshot(page: Path, folder: Path, width: int, height: int) -> Image:
    """A screenshot of the page at `width` x `height` CSS pixels, decoded."""
    shot = folder / "screenshot.png"
    _run(page, folder / "profile", f"--screenshot={shot}", f"--window-size={width},{height}")
    return decode_png(shot.read_bytes())


def decode_png(data: bytes) -> Image:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes), as RGB pixels."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    offset, chunks, header = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour_type not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour_type}")
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous,
                         channels)  # fmt: skip
        pixels += [tuple(line[x : x + 3]) for x in range(0, stride, channels)]  # type: ignore[misc]
        previous = line
    return Image(width, height, pixels)


def _unfilter(kind: int, line: bytearray, previous: bytearray, step: int) -> bytearray:
    for x in range(len(line)):
        left = line[x - step] if x >= step else 0
        up = previous[x]
        corner = previous[x - step] if x >= step else 0
        if kind == 1:
            line[x] = (line[x] + left) & 0xFF
        elif kind == 2:
            line[x] = (line[x] + up) & 0xFF
        elif kind == 3:
            line[x] = (line[x] + (left + up) // 2) & 0xFF
        elif kind == 4:
            guess = left + up - corner
            near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up),
                       (abs(guess - corner), 2, corner))  # fmt: skip
            line[x] = (line[x] + near[2]) & 0xFF
    return line
