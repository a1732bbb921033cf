"""Draw the loop mlops-engine exists for as an SVG (docs/figures/loop.svg).

Six stages on a circle, each a box with its name and the engine's part, arrows from each
to the next; no drawing by hand, so the picture changes with this file only.
``tests/test_docs_build.py`` checks that the committed SVG is this script's output.

Usage: python docs/figures/make_loop.py [OUT]   (default: loop.svg beside this script)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from xml.sax.saxutils import escape

STAGES = [
    ("Version data", "engine.data: snapshot clinic:v1"),
    ("Train", "engine.dist over MPI ranks"),
    ("Register", "engine.registry: glucose:v1, lineage"),
    ("Promote", "gate on metrics: @production"),
    ("Serve, guarded", "Guard.wrap(model.predict)"),
    ("Monitor", "drift windows: RetrainSignal"),
]
W, H = 760, 560
CX, CY, R = W / 2, H / 2 + 10, 195
BOX_W, BOX_H = 220, 58


def svg() -> str:
    pts = [(CX + R * math.cos(-math.pi / 2 + 2 * math.pi * i / len(STAGES)),
            CY + R * math.sin(-math.pi / 2 + 2 * math.pi * i / len(STAGES)))
           for i in range(len(STAGES))]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif">',
           '<defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" '
           'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#445"/></marker></defs>',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{CX:.0f}" y="30" text-anchor="middle" font-size="20" '
           'font-weight="bold">The loop: data, training, registry, guarded serving, '
           'retraining</text>']
    for i, (x0, y0) in enumerate(pts):  # arrows first, boxes over them
        x1, y1 = pts[(i + 1) % len(pts)]
        dx, dy = x1 - x0, y1 - y0
        d = math.hypot(dx, dy)
        # leave the boxes: start and stop short of their centres
        sx, sy = x0 + dx / d * 70, y0 + dy / d * 40
        ex, ey = x1 - dx / d * 75, y1 - dy / d * 42
        out.append(f'<line x1="{sx:.1f}" y1="{sy:.1f}" x2="{ex:.1f}" y2="{ey:.1f}" '
                   'stroke="#445" stroke-width="2" marker-end="url(#head)"/>')
    for (x, y), (name, part) in zip(pts, STAGES):
        out.append(f'<rect x="{x - BOX_W / 2:.1f}" y="{y - BOX_H / 2:.1f}" width="{BOX_W}" '
                   f'height="{BOX_H}" rx="10" fill="#eef3fb" stroke="#2b5797" stroke-width="2"/>')
        out.append(f'<text x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="16" '
                   f'font-weight="bold">{escape(name)}</text>')
        out.append(f'<text x="{x:.1f}" y="{y + 16:.1f}" text-anchor="middle" '
                   f'font-size="12" fill="#333">{escape(part)}</text>')
    out.append(f'<text x="{CX:.0f}" y="{CY + 5:.0f}" text-anchor="middle" font-size="13" '
               'fill="#555">new data: clinic:v2, chunks reused</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0]) if argv else Path(__file__).with_name("loop.svg")
    target.write_text(svg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
