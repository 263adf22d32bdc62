#!/usr/bin/python3
"""EXIF orientation fixtures (run with Debian's python3 + PIL): jpeg/exif-<k>.jpg is src.ppm saved by PIL
with Exif Orientation k (1..8); jpeg/exif-<k>.ref.png is PIL's ImageOps.exif_transpose of its decode, i.e.
the upright picture a viewer shows (jpeg.test.ts compares every *.ref.png with our decode)."""
import os
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
src = Image.open(f"{HERE}/src.ppm").convert("RGB")
for k in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = k
    path = f"{HERE}/jpeg/exif-{k}.jpg"
    src.save(path, quality=95, exif=exif.tobytes())
    ImageOps.exif_transpose(Image.open(path)).convert("RGB").save(f"{HERE}/jpeg/exif-{k}.ref.png")
