"""The three sample game specs `mobius init --sample` writes (sushi-go, love-letter, hanamikoji).

Their component images are the sample library's (mobius.workspace.sample), referenced relative to
the library root, so a fresh sample workspace renders without any other input.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mobius.render.spec import parse_spec
from mobius.safety.atomic import atomic_write_text
from mobius.workspace.sample import GAMES, components

RULES: dict[str, dict[str, object]] = {
    "sushi-go": {
        "players": {"min": 2, "max": 5},
        "play_time_minutes": 15,
        "rules": [
            ("Setup", "Shuffle the deck. Deal each player a hand of cards: 10 cards for two players, "
                      "down to 7 cards for five. Put the score track where everyone can reach it.",
             ["score-track", "round-marker"]),
            ("Pick and pass", "Everyone secretly picks one card from their hand and puts it face down. "
                              "All reveal at once, then pass the rest of the hand to the left.",
             ["salmon-nigiri", "squid-nigiri", "egg-nigiri"]),
            ("Combos", "Tempura scores 5 for a pair, sashimi 10 for a set of three. Dumplings score more "
                       "the more you have. Wasabi triples the next nigiri.",
             ["tempura", "sashimi", "dumpling", "wasabi"]),
            ("Maki and chopsticks", "Most maki rolls at the end of a round scores 6. Chopsticks let you "
                                    "take two cards in a later turn by handing them back.",
             ["maki-roll", "chopsticks"]),
            ("Puddings and winning", "Play three rounds. Puddings are kept until the end: most scores 6, "
                                     "fewest loses 6. The highest score wins.",
             ["pudding", "score-track"]),
        ],
    },
    "love-letter": {
        "players": {"min": 2, "max": 4},
        "play_time_minutes": 20,
        "rules": [
            ("Setup", "Shuffle the sixteen cards, remove one face down, and deal one card to each player. "
                      "Keep the tokens of affection nearby.",
             ["token-of-affection", "reference-card"]),
            ("Your turn", "Draw a card, then play one of your two cards face up and do what it says. "
                          "The card you keep is your hope for the Princess's heart.",
             ["guard", "priest", "baron"]),
            ("Protect and accuse", "The Handmaid protects you until your next turn. The Prince makes a "
                                   "player discard; the King trades hands.",
             ["handmaid", "prince", "king"]),
            ("Countess and Princess", "Discard the Countess if you hold her with the King or Prince. "
                                      "Whoever discards the Princess is out of the round.",
             ["countess", "princess"]),
            ("Winning", "When the deck runs out, the highest card still in hand wins a token of affection. "
                        "Collect enough tokens to win the game.",
             ["token-of-affection"]),
        ],
    },
    "hanamikoji": {
        "players": {"min": 2, "max": 2},
        "play_time_minutes": 15,
        "rules": [
            ("Setup", "Place the seven geisha cards in a row with the victory markers in the middle. "
                      "Shuffle the item cards, remove one, and deal six to each player.",
             ["board", "geisha-mai", "geisha-kiku", "geisha-sakura"]),
            ("Four actions", "Each round you use each of your four action tokens once: keep one card "
                             "secret, discard two, offer three, or offer two pairs.",
             ["action-secret", "action-trade-off"]),
            ("Gifts", "Items are given to the geisha who loves them: fans, parasols, flutes. Your "
                      "opponent chooses from your offers, so choose them with care.",
             ["fan", "parasol", "flute"]),
            ("Favour", "After each round, whoever gave a geisha more of her items wins her favour and "
                       "moves her victory marker to their side.",
             ["victory-marker", "geisha-sakura"]),
            ("Winning", "Win with four geishas or eleven charm points. Otherwise play another round "
                        "with the markers where they stand.",
             ["victory-marker"]),
        ],
    },
}


def _component_id(label: str) -> str:
    words = label.lower().replace(":", "").split()
    if words and words[0] == "geisha":
        return "-".join(words)
    if label.startswith("Princess"):
        return "princess"
    return "-".join(words)


def sample_spec(slug: str) -> dict[str, object]:
    """The spec of a sample game as a plain dict (what the YAML file holds)."""
    game = GAMES[slug]
    extra = RULES[slug]
    return {
        "slug": slug,
        "title": game["title"],
        "players": extra["players"],
        "play_time_minutes": extra["play_time_minutes"],
        "color": list(game["color"]),  # type: ignore[arg-type]
        "duration": 30.0,
        "components": [{"id": _component_id(c.label), "name": c.label, "image": f"{slug}/{c.path}"}
                       for c in components(slug)],
        "rules": [{"heading": h, "text": t, "show": show} for h, t, show in extra["rules"]],  # type: ignore[union-attr]
    }


def write_sample_specs(games_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Write games/<slug>.yaml for the three samples (keeps existing files unless `overwrite`)."""
    written = []
    for slug in GAMES:
        target = games_dir / f"{slug}.yaml"
        if target.exists() and not overwrite:
            continue
        data = sample_spec(slug)
        parse_spec(data, source=str(target))
        atomic_write_text(target, f"# Tutorial preview spec for {GAMES[slug]['title']} (see docs/golden.md)\n"
                          + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), file_mode=0o644)
        written.append(target)
    return written


def init_game_specs(ws, result, *, sample: bool, progress=None) -> None:
    """`mobius init --sample` step: write the three sample specs into games/ (never overwrites)."""
    if not sample:
        return
    written = write_sample_specs(ws.games)
    result.sample["game_specs"] = [str(p.relative_to(ws.root)) for p in written]
