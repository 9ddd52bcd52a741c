"""A realistic sample media library, drawn locally and deterministically (no downloads).

Three games (Sushi Go, Love Letter, Hanamikoji), each with PNG and JPEG component images
(cards, boards, tokens) of different sizes, some near-duplicates (a JPEG re-save of a PNG,
a slightly brightened scan), and short MP4 clips; nested folders, a name with spaces and
names with non-ASCII characters. The same seed gives the same files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance

from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import atomic_write, atomic_write_bytes


@dataclass(frozen=True)
class Component:
    """One image in the library: where it goes and what it depicts."""

    path: str
    label: str
    kind: str  # card, board, token
    size: tuple[int, int]
    color: tuple[int, int, int]


GAMES: dict[str, dict[str, object]] = {
    "sushi-go": {
        "title": "Sushi Go!",
        "color": (230, 90, 70),
        "components": [
            ("cards/nigiri/salmon-nigiri.png", "Salmon Nigiri", "card"),
            ("cards/nigiri/squid-nigiri.png", "Squid Nigiri", "card"),
            ("cards/nigiri/egg-nigiri.png", "Egg Nigiri", "card"),
            ("cards/maki-roll.png", "Maki Roll", "card"),
            ("cards/tempura.png", "Tempura", "card"),
            ("cards/sashimi.png", "Sashimi", "card"),
            ("cards/dumpling.png", "Dumpling", "card"),
            ("cards/wasabi.png", "Wasabi", "card"),
            ("cards/chopsticks.png", "Chopsticks", "card"),
            ("cards/pudding.png", "Pudding", "card"),
            ("boards/score track.jpg", "Score Track", "board"),
            ("tokens/round-marker.png", "Round Marker", "token"),
        ],
    },
    "love-letter": {
        "title": "Love Letter",
        "color": (150, 40, 70),
        "components": [
            ("cards/1-guard.png", "Guard", "card"),
            ("cards/2-priest.png", "Priest", "card"),
            ("cards/3-baron.png", "Baron", "card"),
            ("cards/4-handmaid.png", "Handmaid", "card"),
            ("cards/5-prince.png", "Prince", "card"),
            ("cards/6-king.png", "King", "card"),
            ("cards/7-countess.png", "Countess", "card"),
            ("cards/8-Princess Annette.png", "Princess", "card"),
            ("tokens/token of affection.png", "Token of Affection", "token"),
            ("boards/reference card.jpg", "Reference Card", "board"),
        ],
    },
    "hanamikoji": {
        "title": "Hanamikoji",
        "color": (90, 60, 150),
        "components": [
            ("cartes/geishas/芸者 Mai.png", "Geisha Mai", "card"),
            ("cartes/geishas/芸者 Kiku.png", "Geisha Kiku", "card"),
            ("cartes/geishas/芸者 Sakura.png", "Geisha Sakura", "card"),
            ("cartes/objets/éventail.png", "Fan", "card"),
            ("cartes/objets/ombrelle.png", "Parasol", "card"),
            ("cartes/objets/flûte.png", "Flute", "card"),
            ("plateau/board.jpg", "Board", "board"),
            ("jetons/action-secret.png", "Action: Secret", "token"),
            ("jetons/action-trade-off.png", "Action: Trade-off", "token"),
            ("jetons/victory marker.png", "Victory Marker", "token"),
        ],
    },
}

SIZES = {"card": (300, 420), "board": (960, 640), "token": (128, 128)}


def components(slug: str) -> list[Component]:
    game = GAMES[slug]
    rng = random.Random(slug)
    out = []
    for path, label, kind in game["components"]:  # type: ignore[union-attr]
        w, h = SIZES[kind]
        scale = rng.choice([1.0, 1.0, 1.25, 0.8]) if kind == "card" else 1.0
        base = game["color"]
        color = tuple(max(0, min(255, c + rng.randint(-40, 40))) for c in base)  # type: ignore[union-attr]
        out.append(Component(path, label, kind, (int(w * scale), int(h * scale)), color))  # type: ignore[arg-type]
    return out


def draw_component(component: Component, seed: str) -> Image.Image:
    """A drawn card, board or token: coloured face, border, shapes and its label."""
    rng = random.Random(seed + component.path)
    w, h = component.size
    image = Image.new("RGB", (w, h), (245, 240, 230))
    draw = ImageDraw.Draw(image)
    if component.kind == "token":
        draw.ellipse((4, 4, w - 5, h - 5), fill=component.color, outline=(30, 30, 30), width=4)
    else:
        draw.rounded_rectangle((6, 6, w - 7, h - 7), radius=18, fill=component.color, outline=(30, 30, 30), width=5)
        for _ in range(6 if component.kind == "card" else 24):
            x, y = rng.randint(20, w - 60), rng.randint(60, h - 60)
            r = rng.randint(10, max(12, min(w, h) // 6))
            shade = tuple(min(255, c + rng.randint(30, 90)) for c in component.color)
            if rng.random() < 0.5:
                draw.ellipse((x, y, x + r, y + r), fill=shade)
            else:
                draw.rectangle((x, y, x + r, y + r // 2), fill=shade)
        if component.kind == "board":
            for i in range(12):
                draw.rectangle((30 + i * 72, h - 90, 90 + i * 72, h - 40), outline=(250, 250, 250), width=3)
    draw.rectangle((14, 14, w - 15, 48), fill=(250, 250, 245))
    draw.text((22, 24), component.label, fill=(20, 20, 20))
    return image


def _save(image: Image.Image, target: Path, fmt: str, **options: object) -> int:
    with atomic_write(target, "wb", file_mode=0o644) as handle:
        image.save(handle, format=fmt, **options)
        handle.flush()
        return handle.tell()


def write_clip(target: Path, label: str, color: tuple[int, int, int], *, seconds: float = 2.0) -> int:
    """A short H.264 clip of a component sliding across a table, through PyAV."""
    import av
    import numpy as np

    w, h, fps = 320, 240, 15
    with atomic_write(target, "wb", file_mode=0o644) as handle:
        container = av.open(handle, mode="w", format="mp4")
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for i in range(int(seconds * fps)):
            frame = np.full((h, w, 3), (34, 85, 51), dtype=np.uint8)
            x = int((w - 80) * i / (seconds * fps))
            frame[70:180, x : x + 80] = color
            frame[70:78, x : x + 80] = 250
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        handle.flush()
        return handle.tell()


def generate_library(library: Path, *, seed: str = "mobius", progress: Progress | None = None) -> dict[str, int]:
    """Write the sample library under `library`. Returns {'files': n, 'bytes': n}."""
    progress = progress or NoProgress()
    plan: list[tuple[str, Component]] = [(slug, c) for slug in GAMES for c in components(slug)]
    progress.start("sample library", total=len(plan) + 2 * len(GAMES) + 2)
    files = size = 0
    for slug, component in plan:
        image = draw_component(component, seed)
        target = library / slug / component.path
        if component.path.endswith(".jpg"):
            size += _save(image, target, "JPEG", quality=88)
        else:
            size += _save(image, target, "PNG", optimize=False)
        files += 1
        progress.advance()
    # near-duplicates: a JPEG re-save of a PNG card, and a brightened "second scan"
    for slug in GAMES:
        first = components(slug)[0]
        image = draw_component(first, seed)
        stem = Path(first.path).stem
        size += _save(image, library / slug / "scans" / f"{stem} (scan).jpg", "JPEG", quality=80)
        brighter = ImageEnhance.Brightness(image).enhance(1.04)
        size += _save(brighter, library / slug / "scans" / f"{stem}-rescan.png", "PNG")
        files += 2
        progress.advance()
    for slug, game in GAMES.items():
        size += write_clip(library / slug / "clips" / "setup.mp4", str(game["title"]), game["color"])  # type: ignore[arg-type]
        files += 1
        progress.advance()
    tour = library / "hanamikoji" / "clips" / "tour d'horizon.mp4"
    size += write_clip(tour, "Hanamikoji", (200, 160, 60), seconds=1.0)
    files += 1
    progress.advance()
    (library / "previews").mkdir(parents=True, exist_ok=True)  # an empty folder, kept by backups
    atomic_write_bytes(library / "sushi-go" / "cards" / "empty-note.txt", b"", file_mode=0o644)  # an empty file
    files += 1
    progress.advance()
    progress.finish()
    return {"files": files, "bytes": size}
