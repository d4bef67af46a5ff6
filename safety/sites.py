"""Body sites as plain values: a region from a fixed list and a side, written as one key.

A site is the string ``"region"`` or ``"region:side"`` (``"cheek:left"``, ``"nose"``), so the kernel
compares plain values and stores nothing else. Free text is read best-effort (``parse``): "left cheek",
"Left cheek", "left cheek " and "cheek, left" are all ``"cheek:left"``. What cannot be read stays its
own site, compared by its words (case, spaces and punctuation aside).

Two sites are the same skin (``same_site``) when their regions are equal and their sides do not
exclude each other: a site without a side, or "both", meets the left and the right one. The interval
rule errs towards "same site", never towards a fresh budget.
"""

from __future__ import annotations

import re

#: region key -> (label, has sides); the order is the picker's
REGIONS: dict[str, tuple[str, bool]] = {
    "scalp": ("scalp", False),
    "forehead": ("forehead", False),
    "temple": ("temple", True),
    "eyebrow": ("eyebrow", True),
    "nose": ("nose", False),
    "cheek": ("cheek", True),
    "ear": ("ear", True),
    "upper_lip": ("upper lip", False),
    "chin": ("chin", False),
    "jaw": ("jaw", True),
    "neck": ("neck", False),
    "shoulder": ("shoulder", True),
    "upper_arm": ("upper arm", True),
    "elbow": ("elbow", True),
    "forearm": ("forearm", True),
    "wrist": ("wrist", True),
    "hand": ("hand", True),
    "finger": ("finger", True),
    "chest": ("chest", False),
    "breast": ("breast", True),
    "abdomen": ("abdomen", False),
    "back": ("back", False),
    "lower_back": ("lower back", False),
    "flank": ("flank", True),
    "buttock": ("buttock", True),
    "hip": ("hip", True),
    "thigh": ("thigh", True),
    "knee": ("knee", True),
    "calf": ("calf", True),
    "shin": ("shin", True),
    "ankle": ("ankle", True),
    "foot": ("foot", True),
    "toe": ("toe", True),
}
SIDES: tuple[str, ...] = ("left", "right", "both")

_SIDE_WORDS = {"left": "left", "l": "left", "lt": "left", "right": "right", "r": "right", "rt": "right",
               "both": "both", "bilateral": "both"}
_SYNONYMS = {"upper arm": "upper_arm", "arm upper": "upper_arm", "lower arm": "forearm", "upper lip": "upper_lip",
             "lip upper": "upper_lip", "lower back": "lower_back", "back lower": "lower_back", "belly": "abdomen",
             "stomach": "abdomen", "lower leg": "calf", "sole": "foot", "palm": "hand", "cheeks": "cheek",
             "hands": "hand", "feet": "foot"}


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9]+", " ", text.casefold()).split()


def key(region: str, side: str = "") -> str:
    """The site's key; ``ValueError`` for a region or side not in the lists."""
    if region not in REGIONS:
        raise ValueError(f"unknown body region {region!r}")
    if side and side not in SIDES:
        raise ValueError(f"a side is one of {', '.join(SIDES)}")
    if side and not REGIONS[region][1]:
        raise ValueError(f"the {REGIONS[region][0]} has no side")
    return f"{region}:{side}" if side else region


def parse(text: str) -> tuple[str, str] | None:
    """(region, side) read from a key or free text; None when no region of the list is named. A side
    named on a region without sides is dropped, however it was written: it is the same skin."""
    found = _read_key(text) or _read_words(text)
    if found is None:
        return None
    region, side = found
    return region, side if REGIONS[region][1] else ""


def _read_key(text: str) -> tuple[str, str] | None:
    region, colon, side = text.strip().partition(":")
    return (region, side) if colon and region in REGIONS and (side in SIDES or not side) else None


def _read_words(text: str) -> tuple[str, str] | None:
    words = _words(text)
    sides = {_SIDE_WORDS[w] for w in words if w in _SIDE_WORDS}
    rest = " ".join(w for w in words if w not in _SIDE_WORDS and w not in ("side", "of", "the", "and"))
    region = _SYNONYMS.get(rest, rest.replace(" ", "_"))
    if region not in REGIONS:
        return None
    return region, "both" if len(sides) > 1 or "both" in sides else next(iter(sides), "")


def normalise(text: str) -> str:
    """The structured key of a site written any way; text naming no region: its words, lower case."""
    found = parse(text)
    return key(*found) if found else " ".join(_words(text))


def label(site: str) -> str:
    """"left cheek" for ``cheek:left``; an unstructured site as written."""
    found = parse(site) if site in REGIONS or ":" in site else None
    if found is None:
        return site
    region, side = found
    return f"{side} {REGIONS[region][0]}" if side else REGIONS[region][0]


def same_site(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` may be the same skin (see the module's doc)."""
    first, second = parse(a), parse(b)
    if first is None or second is None:
        return normalise(a) == normalise(b)
    if first[0] != second[0]:
        return False
    return {first[1], second[1]} != {"left", "right"}
