"""What every self-contained HTML report shares: figures as inline PNG and the base stylesheet."""

from __future__ import annotations

import base64
import html as _html
import io
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BASE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1f2328; line-height: 1.45; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #d0d7de; padding-bottom: 0.2rem; }
section { margin-bottom: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.muted { color: #656d76; } .decision { font-size: 1.2rem; }
figure { display: inline-block; margin: 0 1rem 1rem 0; }
"""


def figure_png(draw: Callable[[Figure], None], size: tuple[float, float]) -> str:
    """Draw on a fresh figure with its own Agg canvas and return it as base64 PNG.

    The canvas is attached per figure, so the global matplotlib backend (and any interactive
    session) is left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    draw(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def escape(value: object) -> str:
    """`value` as text safe inside HTML content and attributes."""
    return _html.escape(str(value), quote=True)
