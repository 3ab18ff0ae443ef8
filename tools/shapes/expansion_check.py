"""expansion_check.py — does a descriptive caption keep a short prompt of the shapes world?

The reference for the expander's grammar-constrained decoding (models/llm/expand_grammar.c),
written apart from it, from the world's definition (world.py):
  - the caption is one in world.py's descriptive grammar: one to three clauses
    "a SIZE COLOUR SHAPE in the POSITION", one object per cell, ", on a white background.";
  - it means what the short prompt means (world.py short_caption): every phrase asking for N
    objects is fitted by exactly N objects of the scene, and no object fits two phrases;
  - one rule stricter than the world, the grammar's own: a phrase that names a position has
    no look-alike elsewhere (an object fitting it but for the cell) that no other phrase asks
    for — copies in other cells would hedge the position instead of keeping it.

    python tools/shapes/expansion_check.py SHORT.txt EXPANDED.txt   # prints kept / not kept
"""
import re
import sys

import world

CELLS = [world.cell_name(c) for c in range(9)]
NUMBER = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3}
SINGULAR = {p: s for s, p in world.PLURAL.items()}


def parse_short(text):
    """A short prompt as a list of phrases {count, shape, colour, size, cell}; None when it
    is not in the world's short-caption grammar."""
    phrases = []
    for part in re.split(r",\s*and\s+|,\s*|\s+and\s+", text.strip().rstrip(".").lower()):
        m = re.fullmatch(r"(a|an|one|two|three) (?:(small|large) )?(?:(\w+) )?(\w+)(?: in the ([a-z ]+))?", part)
        if not m:
            return None
        count, size, colour, shape, cell = m.groups()
        if colour is not None and colour not in world.COLOURS:
            return None
        n = NUMBER[count]
        if (n == 1 and shape not in world.SHAPES) or (n > 1 and shape not in SINGULAR):
            return None
        if cell is not None and cell not in CELLS:
            return None
        phrases.append({"count": n, "shape": shape if n == 1 else SINGULAR[shape], "colour": colour,
                        "size": size, "cell": None if cell is None else CELLS.index(cell)})
    if sum(p["count"] for p in phrases) > 3:
        return None
    return phrases


CLAUSE = (r"(small|large) (" + "|".join(world.COLOURS) + r") (" + "|".join(world.SHAPES) + r") in the (" +
          "|".join(sorted(CELLS, key=len, reverse=True)) + r")")


def parse_descriptive(text):
    """A caption in world.py's descriptive grammar as a scene (list of objects), else None."""
    m = re.fullmatch(r"\s*A " + CLAUSE + r"((?:, a " + CLAUSE + r")*), on a white background\.", text)
    if not m:
        return None
    scene = [m.groups()[:4]] + re.findall(r", a " + CLAUSE, m.group(5))
    objs = [{"size": s, "colour": c, "shape": sh, "cell": CELLS.index(p)} for s, c, sh, p in scene]
    if len(objs) > 3 or len({o["cell"] for o in objs}) != len(objs):
        return None
    return objs


def fits(obj, phrase, ignore_cell=False):
    return all(phrase[k] is None or phrase[k] == obj[k] for k in ("shape", "colour", "size")) and \
        (ignore_cell or phrase["cell"] is None or phrase["cell"] == obj["cell"])


def keeps(short, descriptive):
    """True when the descriptive caption is a faithful expansion of the short prompt."""
    phrases, objs = parse_short(short), parse_descriptive(descriptive)
    if phrases is None or objs is None:
        return False
    for o in objs:
        if sum(fits(o, p) for p in phrases) > 1:
            return False
    for p in phrases:
        if sum(fits(o, p) for o in objs) != p["count"]:
            return False
        if p["cell"] is not None:
            alike = [o for o in objs if fits(o, p, ignore_cell=True) and not fits(o, p)
                     and not any(fits(o, q) for q in phrases)]
            if alike:
                return False
    return True


def main():
    shorts = [l.rstrip("\n") for l in open(sys.argv[1])]
    expanded = [l.rstrip("\n") for l in open(sys.argv[2])]
    assert len(shorts) == len(expanded), "the two files differ in length"
    bad = [i for i, (s, e) in enumerate(zip(shorts, expanded)) if not keeps(s, e)]
    for i in bad:
        print(f"not kept: {shorts[i]!r} => {expanded[i]!r}")
    print(f"{len(shorts) - len(bad)} of {len(shorts)} expansions keep their prompt")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
