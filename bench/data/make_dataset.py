"""Writes N seeded 224x224 JPEG images with CogVLM-SFT-style labels (images/ + labels/) for `pnpm bench data`.
usage: /usr/bin/python3 make_dataset.py DIR N"""
import json
import os
import random
import sys

from PIL import Image, ImageDraw

out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(out, "images"), exist_ok=True)
os.makedirs(os.path.join(out, "labels"), exist_ok=True)
colors = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 220), "yellow": (230, 210, 40)}
rng = random.Random(0)
for i in range(n):
    name, rgb = rng.choice(sorted(colors.items()))
    img = Image.new("RGB", (224, 224), tuple(rng.randrange(0, 60) for _ in range(3)))
    d = ImageDraw.Draw(img)
    x, y, r = rng.randrange(40, 184), rng.randrange(40, 184), rng.randrange(15, 40)
    d.ellipse((x - r, y - r, x + r, y + r), fill=rgb)
    for _ in range(200):  # texture, so the JPEGs are not trivially small
        px, py = rng.randrange(224), rng.randrange(224)
        d.point((px, py), fill=tuple(rng.randrange(256) for _ in range(3)))
    img.save(os.path.join(out, "images", "%06d.jpg" % i), quality=90)
    conv = [{"role": "user", "content": "What colour is the circle?"}, {"role": "assistant", "content": name}]
    with open(os.path.join(out, "labels", "%06d.json" % i), "w") as f:
        json.dump({"conversations": conv}, f)
