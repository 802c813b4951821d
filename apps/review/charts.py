"""Server-rendered SVG geometry for the review dashboard (no script, no CDN): the template draws
what these functions compute. CSP-safe: shading is a class (`shade-0` … `shade-5`), never a style."""

from __future__ import annotations

from dataclasses import dataclass

SHADES = 5
WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 24, 12, 40


@dataclass(frozen=True)
class Cell:
    count: int
    shade: int  # 0 (none) … SHADES (the row's largest share)
    share: float  # of the row's total
    diagonal: bool


def confusion_grid(labels: list[str], matrix: list[tuple[str, list[int]]]) -> list[tuple[str, list[Cell]]]:
    """Rows (model label, cells) shaded by each cell's share of its row; the diagonal (model and
    physician agree) marked."""
    rows = []
    for model_label, counts in matrix:
        total = sum(counts)
        cells = []
        for physician_label, n in zip(labels, counts):
            share = n / total if total else 0.0
            shade = 0 if n == 0 else max(1, round(share * SHADES))
            cells.append(Cell(count=n, shade=shade, share=share, diagonal=physician_label == model_label))
        rows.append((model_label, cells))
    return rows


def agreement_chart(points) -> dict:
    """A line of agreement (0–100 %) per period with a dot and label per point, y grid lines at
    0/50/100 %, x labels with the period's first day. `points`: AgreementPoint list, oldest first."""
    if not points:
        return {}
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = inner_w / max(1, len(points) - 1)
    dots = []
    for k, p in enumerate(points):
        x = LEFT + (k * step if len(points) > 1 else inner_w / 2)
        y = TOP + inner_h * (1 - p.rate)
        dots.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "label_y": round(y - 8 if y - 8 >= TOP + 8 else y + 16, 1),  # above the dot, or below at the top
                "percent": round(p.rate * 100),
                "reviews": p.reviews,
                "agreed": p.agreed,
                "day": p.day,
            }
        )
    grid = [{"y": round(TOP + inner_h * (1 - v / 100), 1), "label": f"{v} %"} for v in (0, 50, 100)]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "polyline": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots,
        "grid": grid,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "axis_y": HEIGHT - BOTTOM,
        "label_y": HEIGHT - BOTTOM + 16,
    }
