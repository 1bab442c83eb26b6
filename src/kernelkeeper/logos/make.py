"""Draw the kind badges into this folder: ``python -m kernelkeeper.logos.make``.

No image library and no font: a 5×7 pixel font, a rounded square, 4×4 supersampling, and a
PNG written with zlib. The output is deterministic, so the committed files can be checked
against it (tests/test_logos.py).
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

from . import BADGES, FILES, GENERIC, GENERIC_BADGE, HERE

# 5×7 glyphs, rows top to bottom, "#" is ink.
GLYPHS: dict[str, tuple[str, ...]] = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", ".#.#.", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "##.##", "#...#"),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
}
SUB = 4  # samples per pixel side
RADIUS = 0.22  # corner radius, as a share of the side


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _ink(label: str, size: int) -> tuple[float, float, float, list[tuple[int, int]]]:
    """The label's cells: (left, top, cell size, [(column, row)])."""
    cols = 6 * len(label) - 1
    cell = min(0.74 * size / cols, 0.42 * size / 7)
    left, top = (size - cols * cell) / 2, (size - 7 * cell) / 2
    cells = [
        (6 * i + x, y)
        for i, ch in enumerate(label)
        for y, row in enumerate(GLYPHS[ch])
        for x, c in enumerate(row)
        if c == "#"
    ]
    return left, top, cell, cells


def _inside_square(px: float, py: float, size: int) -> bool:
    r = RADIUS * size
    cx = min(max(px, r), size - r)
    cy = min(max(py, r), size - r)
    return (px - cx) ** 2 + (py - cy) ** 2 <= r * r


def draw(label: str, colour: str, size: int) -> bytes:
    """The badge as an RGBA PNG of ``size``×``size``."""
    bg = _rgb(colour)
    left, top, cell, cells = _ink(label, size)
    ink = set(cells)
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter: none
        for x in range(size):
            square = text = 0
            for sy in range(SUB):
                for sx in range(SUB):
                    px, py = x + (sx + 0.5) / SUB, y + (sy + 0.5) / SUB
                    if not _inside_square(px, py, size):
                        continue
                    square += 1
                    gx, gy = (px - left) / cell, (py - top) / cell
                    if gx >= 0 and gy >= 0 and (int(gx), int(gy)) in ink:
                        text += 1
            alpha = round(255 * square / SUB**2)
            share = text / square if square else 0.0
            row += bytes(round(c + (255 - c) * share) for c in bg) + bytes([alpha])
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def svg(label: str, colour: str) -> bytes:
    """The badge as SVG: the same square and pixel letters, on a 64-unit grid."""
    size = 64
    left, top, cell, cells = _ink(label, size)
    r = RADIUS * size
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">',
        f'<rect width="64" height="64" rx="{r:g}" fill="{colour}"/>',
        '<path fill="#fff" d="',
    ]
    parts += [f"M{left + x * cell:.3f} {top + y * cell:.3f}h{cell:.3f}v{cell:.3f}h-{cell:.3f}z" for x, y in cells]
    parts.append('"/></svg>\n')
    return "".join(parts).encode()


def render(label: str, colour: str) -> dict[str, bytes]:
    """The three files of one badge, by name."""
    out = {FILES[0]: svg(label, colour), FILES[1]: draw(label, colour, 32), FILES[2]: draw(label, colour, 64)}
    assert set(out) == set(FILES)
    return out


def all_badges() -> dict[str, dict[str, bytes]]:
    """Every kind's files (and the generic one's), by folder name."""
    return {kind: render(*badge) for kind, badge in {**BADGES, GENERIC: GENERIC_BADGE}.items()}


def main(target: Path = HERE) -> None:
    for kind, files in all_badges().items():
        folder = target / kind
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        print(folder, file=sys.stderr)


if __name__ == "__main__":
    main()
