"""Drawing scenes with Pillow: the title card and one picture per rule section.

Scenes are laid out on a 960x540 canvas and resized for other output sizes, so a proxy shows the
same layout. Text uses Pillow's built-in scalable font (present wherever Pillow >= 10.1 is), so
the same inputs draw the same pixels on any machine with the same Pillow.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from mobius.render.shots import Shot

CANVAS = (960, 540)
BAR_Y = (516, 524)  # the progress bar drawn per frame
TRACK = (70, 70, 80)


@lru_cache(maxsize=16)
def font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _shade(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(c * factor))) for c in color)  # type: ignore[return-value]


def wrap(draw, text: str, size: int, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if line and draw.textlength(trial, font=font(size)) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def _load(path: Path, box: tuple[int, int]):
    from PIL import Image

    with Image.open(path) as image:
        picture = image.convert("RGB")
    picture.thumbnail(box, Image.Resampling.LANCZOS)
    return picture


def _place_images(canvas, draw, assets, area: tuple[int, int, int, int], caption_size: int = 16) -> None:
    if not assets:
        return
    x0, y0, x1, y1 = area
    count = len(assets)
    columns = min(count, 3)
    rows = (count + columns - 1) // columns
    cell_w = (x1 - x0) // columns
    cell_h = (y1 - y0) // rows
    for n, asset in enumerate(assets):
        col, row = n % columns, n // columns
        picture = _load(asset.path, (cell_w - 16, cell_h - 34))
        cx = x0 + col * cell_w + (cell_w - picture.width) // 2
        cy = y0 + row * cell_h + (cell_h - 28 - picture.height) // 2
        draw.rectangle((cx + 5, cy + 5, cx + picture.width + 5, cy + picture.height + 5), fill=(15, 15, 20))
        canvas.paste(picture, (cx, cy))
        label = asset.name
        w = draw.textlength(label, font=font(caption_size))
        draw.text((x0 + col * cell_w + (cell_w - w) / 2, cy + picture.height + 10), label,
                  font=font(caption_size), fill=(235, 235, 235))


def draw_shot(shot: Shot, *, color: tuple[int, int, int], sections: int, size: tuple[int, int] = CANVAS):
    """The still picture of one shot as an RGB Pillow image of `size`."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", CANVAS, _shade(color, 0.25))
    draw = ImageDraw.Draw(canvas)
    if shot.kind == "title":
        draw.rectangle((0, 0, CANVAS[0], 250), fill=_shade(color, 0.8))
        for size_px, text, y, fill in ((72, shot.heading, 70, (255, 255, 255)),
                                       (28, shot.text, 170, (245, 240, 230)),
                                       (24, "How to play", 212, (255, 230, 180))):
            w = draw.textlength(text, font=font(size_px))
            draw.text(((CANVAS[0] - w) / 2, y), text, font=font(size_px), fill=fill)
        _place_images(canvas, draw, shot.assets[:4], (60, 280, 900, 500), caption_size=14)
    else:
        draw.rectangle((0, 0, CANVAS[0], 88), fill=_shade(color, 0.85))
        draw.text((40, 22), shot.heading, font=font(40), fill=(255, 255, 255))
        counter = f"{shot.index} / {sections}"
        w = draw.textlength(counter, font=font(22))
        draw.text((CANVAS[0] - 40 - w, 34), counter, font=font(22), fill=(250, 240, 220))
        y = 120
        for line in wrap(draw, shot.text, 26, 400)[:11]:
            draw.text((40, y), line, font=font(26), fill=(240, 240, 240))
            y += 34
        if shot.assets:
            _place_images(canvas, draw, shot.assets, (470, 110, 930, 500))
        else:
            draw.rounded_rectangle((520, 160, 880, 440), radius=24, outline=_shade(color, 1.3), width=6)
    draw.rectangle((0, BAR_Y[0], CANVAS[0], BAR_Y[1] - 1), fill=TRACK)
    if size != CANVAS:
        canvas = canvas.resize(size, Image.Resampling.LANCZOS)
    return canvas
