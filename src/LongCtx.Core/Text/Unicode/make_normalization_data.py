#!/usr/bin/env python3
"""Writes normalization.bin.gz, the Unicode normalization data UnicodeNormalizer.cs reads (embedded in LongCtx.Core).
Made from Python's unicodedata (python3 make_normalization_data.py; the file records the Unicode version).
Layout (gzip-compressed), little-endian int32: version string length + UTF-8 bytes; then three tables, each a count followed by entries:
  combining classes   (code point, class)                          for every code point with class != 0
  decompositions      (code point, compat flag, length, code points) one level deep, as UnicodeData gives them
  compositions        (first, second, composite)                   canonical pairs that NFC recomposes
Hangul syllables are algorithmic and not listed."""
import gzip, struct, unicodedata

def is_hangul(cp): return 0xAC00 <= cp <= 0xD7A3

ccc, decomp, comp = [], [], []
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF or is_hangul(cp): continue
    ch = chr(cp)
    c = unicodedata.combining(ch)
    if c: ccc.append((cp, c))
    d = unicodedata.decomposition(ch)
    if not d: continue
    parts = d.split()
    compat = parts[0].startswith('<')
    if compat: parts = parts[1:]
    cps = [int(p, 16) for p in parts]
    decomp.append((cp, 1 if compat else 0, cps))
    # A canonical pair decomposition whose NFC is the character itself is a primary composite (not excluded).
    if not compat and len(cps) == 2 and unicodedata.normalize('NFC', ch) == ch:
        comp.append((cps[0], cps[1], cp))

out = bytearray()
v = unicodedata.unidata_version.encode()
out += struct.pack('<i', len(v)) + v
out += struct.pack('<i', len(ccc))
for cp, c in ccc: out += struct.pack('<ii', cp, c)
out += struct.pack('<i', len(decomp))
for cp, compat, cps in decomp: out += struct.pack('<iii', cp, compat, len(cps)) + struct.pack(f'<{len(cps)}i', *cps)
out += struct.pack('<i', len(comp))
for a, b, cp in comp: out += struct.pack('<iii', a, b, cp)
open('normalization.bin.gz', 'wb').write(gzip.compress(bytes(out), mtime=0))
print(f'Unicode {unicodedata.unidata_version}: {len(ccc)} classes, {len(decomp)} decompositions, {len(comp)} compositions, {len(out)} bytes')
