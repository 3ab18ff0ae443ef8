"""png_rgb.py — the pixels of a PNG as Tessera writes it (8-bit RGB, not interlaced), for the
shell tests that compare images value by value (import it with sys.path set to this folder).

Hand-written rather than Pillow: the tests run whatever python3 is on PATH, which need not
have Pillow, and our writer's one format is a zlib stream with the five PNG row filters."""
import struct
import zlib


def rgb(png):
    """bytes of a PNG file -> bytearray of width * height * 3 values."""
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 2), (depth, colour)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, out, prev = zlib.decompress(idat), 3 * w, bytearray(), bytearray(3 * w)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a, b, c = (line[i - 3] if i >= 3 else 0), prev[i], (prev[i - 3] if i >= 3 else 0)
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else (b if abs(p - b) <= abs(p - c) else c)
            line[i] = (line[i] + (0, a, b, (a + b) // 2, paeth)[f]) & 255
        out += line
        prev = line
    return out


def pixels(path):
    """The pixels of the PNG file at path."""
    with open(path, "rb") as f:
        return rgb(f.read())
