"""make_grammar_fixtures.py — fixtures for tests/unit/test_expand_grammar.c: short prompts of the
shapes world with candidate expansions and whether each keeps its prompt, as
expansion_check.py (the reference, written from world.py) judges it.

For 200 scenes of world seed 3, each short caption is paired with: its own descriptive
caption; the next scene's; and its own with one change — an object moved to a free cell,
recoloured, resized, dropped, or a new object added. Lines: short TAB candidate TAB 0|1.

    python tools/shapes/make_grammar_fixtures.py     # writes tests/fixtures/shapes/grammar.tsv
"""
import os
import random

import expansion_check
import world

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "shapes", "grammar.tsv")
N, SEED = 200, 3


def variants(scene, rng):
    free = [c for c in range(9) if c not in {o["cell"] for o in scene}]
    k = rng.randrange(len(scene))
    out = []
    moved = [dict(o) for o in scene]
    moved[k]["cell"] = rng.choice(free)
    out.append(moved)
    recoloured = [dict(o) for o in scene]
    recoloured[k]["colour"] = rng.choice([c for c in world.COLOURS if c != scene[k]["colour"]])
    out.append(recoloured)
    resized = [dict(o) for o in scene]
    resized[k]["size"] = "small" if scene[k]["size"] == "large" else "large"
    out.append(resized)
    if len(scene) > 1:
        out.append([o for i, o in enumerate(scene) if i != k])
    if len(scene) < 3:
        out.append(scene + [{"shape": rng.choice(world.SHAPES), "colour": rng.choice(list(world.COLOURS)),
                             "size": rng.choice(list(world.SIZES)), "cell": rng.choice(free), "jx": 0, "jy": 0}])
    return [world.descriptive_caption(v) for v in out]


def main():
    rng = random.Random(19)
    lines = []
    for i in range(N):
        scene, _, short, desc = world.sample_captions(SEED, i)
        nxt = world.sample_captions(SEED, i + 1)[3]
        for cand in [desc, nxt] + variants(scene, rng):
            lines.append(f"{short}\t{cand}\t{int(expansion_check.keeps(short, cand))}")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    kept = sum(l.endswith("\t1") for l in lines)
    print(f"{OUT}: {len(lines)} pairs, {kept} kept, {len(lines) - kept} not")


if __name__ == "__main__":
    main()
