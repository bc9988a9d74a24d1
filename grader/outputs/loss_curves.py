"""Loss per epoch, the truth's and the student's, as one small inline SVG (Network.training).

A student sees at a glance that their network does not learn, and from when: the truth's curve
is drawn solid, theirs dashed (so it reads without colour), with the epoch where they part marked.
"""
from __future__ import annotations

import html
import math


def loss_curves_svg(truth: list, yours: list, *, title: str = "loss per epoch", width: int = 420, height: int = 180) -> str:
    """Both curves on one log-free linear scale; missing (NaN/inf) epochs leave a gap in the student's."""
    values = [v for v in (*truth, *yours) if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return ""
    low, high = min(0.0, min(values)), max(values)
    high = high if high > low else low + 1.0
    epochs = max(len(truth), len(yours), 2)
    left, right, top, bottom = 44, 10, 18, 28
    x = lambda e: left + (width - left - right) * e / (epochs - 1)  # noqa: E731
    y = lambda v: top + (height - top - bottom) * (1 - (v - low) / (high - low))  # noqa: E731

    def path(series):
        parts, pen = [], "M"
        for e, v in enumerate(series):
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                pen = "M"
                continue
            parts.append(f"{pen}{x(e):.1f},{y(min(v, high)):.1f}")
            pen = "L"
        return " ".join(parts)

    parted = next((e for e, (t, s) in enumerate(zip(truth, yours))
                   if not (isinstance(s, (int, float)) and math.isfinite(s)) or abs(s - t) > 1e-3 * max(1.0, abs(t))), None)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="{html.escape(title)}: the truth\'s loss and yours, per epoch">',
           f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
           f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">{high:.3g}</text>',
           f'<text x="{left - 4}" y="{height - bottom}" font-size="10" text-anchor="end">{low:.3g}</text>',
           f'<text x="{(left + width - right) / 2}" y="{height - 6}" font-size="10" text-anchor="middle">epoch (1 … {epochs})</text>']
    if parted is not None:
        out.append(f'<line x1="{x(parted):.1f}" y1="{top}" x2="{x(parted):.1f}" y2="{height - bottom}" stroke="#c00" stroke-dasharray="2,3"/>'
                   f'<text x="{x(parted) + 3:.1f}" y="{top + 10}" font-size="10" fill="#c00">parts at epoch {parted + 1}</text>')
    out.append(f'<path d="{path(truth)}" fill="none" stroke="#1f5fa8" stroke-width="2"><title>the truth</title></path>')
    out.append(f'<path d="{path(yours)}" fill="none" stroke="#d2691e" stroke-width="2" stroke-dasharray="6,3"><title>yours</title></path>')
    out.append(f'<text x="{width - right}" y="{top - 5}" font-size="10" text-anchor="end">'
               '<tspan fill="#1f5fa8">— the truth</tspan>  <tspan fill="#d2691e">- - yours</tspan></text></svg>')
    return "".join(out)
