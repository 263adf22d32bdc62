#!/usr/bin/python3
"""Regenerates the decoder test fixtures in this folder (run with Debian's python3 + PIL and
libjpeg-turbo-progs: `apt-get install -y python3-pil libjpeg-turbo-progs`).

- src.ppm: the 37x29 source picture (odd size: exercises partial MCUs/blocks).
- jpeg/*.jpg: encoded with cjpeg (libjpeg-turbo) / PIL in many modes; jpeg/*.ref.png = djpeg's decode
  (arithmetic.jpg has no reference: it exists to test the 'unsupported' error).
- png/*.png: written by an independent tiny PNG writer below (every colour type/bit depth,
  all five filter types cycling per row) plus PIL-written ones; png/*.ppm = expected RGB.
"""
import os, struct, subprocess, zlib, random
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
os.makedirs(f"{HERE}/jpeg", exist_ok=True)
os.makedirs(f"{HERE}/png", exist_ok=True)
rng = random.Random(1234)

W, H = 37, 29
px = []
for y in range(H):
    for x in range(W):
        r = int(255 * x / (W - 1)); g = int(255 * y / (H - 1)); b = 128
        if (x - 12) ** 2 + (y - 10) ** 2 < 36: r, g, b = 250, 30, 30
        if 22 <= x <= 32 and 15 <= y <= 25: r, g, b = 20, 40, 230
        if (x // 4 + y // 4) % 5 == 0: b = 255 - b
        n = rng.randint(-12, 12)
        px.append(tuple(max(0, min(255, v + n)) for v in (r, g, b)))
src = Image.new("RGB", (W, H)); src.putdata(px)
src.save(f"{HERE}/src.ppm")

def cjpeg(name, *args):
    out = f"{HERE}/jpeg/{name}.jpg"
    subprocess.run(["cjpeg", *args, "-outfile", out, f"{HERE}/src.ppm"], check=True)
    return out

def ref(jpg):
    ppm = subprocess.run(["djpeg", "-ppm", jpg], check=True, capture_output=True).stdout
    tmp = jpg + ".tmp.ppm"
    open(tmp, "wb").write(ppm)
    Image.open(tmp).convert("RGB").save(jpg[:-4] + ".ref.png")
    os.remove(tmp)

scans = f"{HERE}/seq-scans.txt"
open(scans, "w").write("0;\n1;\n2;\n")
for name, args in [
    ("s444", ["-quality", "90", "-sample", "1x1"]),
    ("s420", ["-quality", "90", "-sample", "2x2"]),
    ("s422", ["-quality", "90", "-sample", "2x1"]),
    ("s440", ["-quality", "90", "-sample", "1x2"]),
    ("s411", ["-quality", "90", "-sample", "4x1"]),
    ("gray", ["-quality", "90", "-grayscale"]),
    ("restart-rows", ["-quality", "85", "-restart", "1"]),
    ("restart-blocks", ["-quality", "85", "-sample", "1x1", "-restart", "3B"]),
    ("optimized", ["-quality", "75", "-optimize"]),
    ("q5-16bit-tables", ["-quality", "3"]),
    ("noninterleaved", ["-quality", "85", "-scans", scans]),
    ("rgb", ["-quality", "95", "-rgb"]),
    # progressive (libjpeg's default script uses spectral selection + successive approximation)
    ("progressive", ["-quality", "90", "-progressive"]),
    ("progressive-444", ["-quality", "95", "-sample", "1x1", "-progressive"]),
    ("progressive-gray", ["-quality", "90", "-grayscale", "-progressive"]),
    ("progressive-restart", ["-quality", "80", "-progressive", "-restart", "2B"]),
]:
    ref(cjpeg(name, *args))
os.remove(scans)
cjpeg("arithmetic", "-arithmetic")
src.save(f"{HERE}/jpeg/pil-q85.jpg", quality=85)
ref(f"{HERE}/jpeg/pil-q85.jpg")
src.save(f"{HERE}/jpeg/pil-progressive.jpg", quality=70, progressive=True, optimize=True)
ref(f"{HERE}/jpeg/pil-progressive.jpg")

# ---- PNG: independent writer ------------------------------------------------------------
PW, PH = 13, 11

def chunk(t, body):
    return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body) & 0xFFFFFFFF)

def paeth(a, b, c):
    p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]

def write_png(path, ctype, depth, rows, plte=None, trns=None, interlace=0, size=None):
    """rows: list of lists of samples (already per-channel ints)."""
    w, h = size or (PW, PH)
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    bpp = max(1, ch * depth // 8)
    def pack(r):
        if depth >= 8:
            return b"".join(v.to_bytes(depth // 8, "big") for v in r)
        bits = "".join(format(v, f"0{depth}b") for v in r)
        bits += "0" * (-len(bits) % 8)
        return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    def filtered(packed):
        raw = b""
        prev = bytes(len(packed[0]))
        for y, cur in enumerate(packed):
            ft = y % 5
            out = bytearray()
            for i in range(len(cur)):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ft]
                out.append((cur[i] - pred) & 0xFF)
            raw += bytes([ft]) + out
            prev = cur
        return raw
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = [[v for x in range(x0, w, dx) for v in rows[y][x * ch:(x + 1) * ch]] for y in range(y0, h, dy)]
            sub = [r for r in sub if r]
            if sub:
                raw += filtered([pack(r) for r in sub])
    else:
        raw = filtered([pack(r) for r in rows])
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
    if plte: data += chunk(b"PLTE", plte)
    if trns: data += chunk(b"tRNS", trns)
    data += chunk(b"tEXt", b"Comment\x00ancillary chunk to skip")
    z = zlib.compress(raw, 9)
    data += chunk(b"IDAT", z[: len(z) // 2]) + chunk(b"IDAT", z[len(z) // 2:]) + chunk(b"IEND", b"")
    open(path, "wb").write(data)

def write_ppm(path, rgb, size=None):
    w, h = size or (PW, PH)
    open(path, "wb").write(b"P6\n%d %d\n255\n" % (w, h) + bytes(v for p in rgb for v in p))

def to8(v, d):
    return v >> 8 if d == 16 else (v if d == 8 else round(v * 255 / ((1 << d) - 1)))

def rnd(d): return rng.randrange(1 << d)

for d in (1, 2, 4, 8, 16):  # gray
    rows = [[rnd(d) for _ in range(PW)] for _ in range(PH)]
    write_png(f"{HERE}/png/gray{d}.png", 0, d, rows)
    write_ppm(f"{HERE}/png/gray{d}.ppm", [(to8(v, d),) * 3 for r in rows for v in r])
for d in (8, 16):  # gray+alpha, rgb, rgba
    rows = [[rnd(d) for _ in range(PW * 2)] for _ in range(PH)]
    write_png(f"{HERE}/png/graya{d}.png", 4, d, rows)
    write_ppm(f"{HERE}/png/graya{d}.ppm", [(to8(r[i], d),) * 3 for r in rows for i in range(0, PW * 2, 2)])
    rows = [[rnd(d) for _ in range(PW * 3)] for _ in range(PH)]
    write_png(f"{HERE}/png/rgb{d}.png", 2, d, rows)
    write_ppm(f"{HERE}/png/rgb{d}.ppm", [tuple(to8(v, d) for v in r[i:i + 3]) for r in rows for i in range(0, PW * 3, 3)])
    rows = [[rnd(d) for _ in range(PW * 4)] for _ in range(PH)]
    write_png(f"{HERE}/png/rgba{d}.png", 6, d, rows)
    write_ppm(f"{HERE}/png/rgba{d}.ppm", [tuple(to8(v, d) for v in r[i:i + 3]) for r in rows for i in range(0, PW * 4, 4)])
for d in (1, 2, 4, 8):  # palette
    n = 1 << d
    pal = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n)]
    rows = [[rnd(d) for _ in range(PW)] for _ in range(PH)]
    write_png(f"{HERE}/png/pal{d}.png", 3, d, rows, plte=bytes(v for p in pal for v in p), trns=bytes([0, 128]))
    write_ppm(f"{HERE}/png/pal{d}.ppm", [pal[v] for r in rows for v in r])

# Adam7 interlaced (same writer, passes filtered independently).
for name, ctype, d, ch, size in [("rgb8", 2, 8, 3, None), ("gray16", 0, 16, 1, None), ("rgba8", 6, 8, 4, None), ("rgb8-3x2", 2, 8, 3, (3, 2))]:
    w, h = size or (PW, PH)
    rows = [[rnd(d) for _ in range(w * ch)] for _ in range(h)]
    write_png(f"{HERE}/png/adam7-{name}.png", ctype, d, rows, interlace=1, size=size)
    write_ppm(f"{HERE}/png/adam7-{name}.ppm", [(to8(r[i], d),) * 3 if ch == 1 else tuple(to8(v, d) for v in r[i:i + 3]) for r in rows for i in range(0, w * ch, ch)], size=size)
n, d = 4, 2
pal = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n)]
rows = [[rnd(d) for _ in range(PW)] for _ in range(PH)]
write_png(f"{HERE}/png/adam7-pal2.png", 3, d, rows, plte=bytes(v for p in pal for v in p), interlace=1)
write_ppm(f"{HERE}/png/adam7-pal2.ppm", [pal[v] for r in rows for v in r])

# PIL-written PNGs (zlib/filters chosen by a real encoder); expected = convert('RGB').
base = src.crop((0, 0, PW, PH))
alpha = Image.linear_gradient("L").resize((PW, PH))
for mode in ("RGB", "RGBA", "L", "LA", "P"):
    im = base.convert(mode) if mode != "RGBA" else Image.merge("RGBA", (*base.split(), alpha))
    if mode == "LA": im = Image.merge("LA", (base.convert("L"), alpha))
    im.save(f"{HERE}/png/pil-{mode}.png", optimize=True)
    write_ppm(f"{HERE}/png/pil-{mode}.ppm", list(Image.open(f"{HERE}/png/pil-{mode}.png").convert("RGB").getdata()))
print("ok")
