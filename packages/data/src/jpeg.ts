// Pure-JS baseline/extended-sequential and progressive (Huffman) JPEG decoder. Written here rather than pulled in so
// the data package has no native/binary dependency. Output is 8-bit RGB.
//
// Fidelity choices mirror libjpeg(-turbo) defaults so pixels match PIL/djpeg closely:
// "fancy" (triangular) chroma upsampling for 2x1, 1x2 and 2x2 subsampling and libjpeg's
// fixed-point YCbCr→RGB. The IDCT is a plain float separable one (within ±1 of libjpeg's islow).
// Coefficients are collected per component first (progressive scans refine them in several
// passes), then dequantised and inverse-transformed once at the end.
// Unsupported (clear error): lossless, hierarchical, arithmetic coding, 12-bit samples, CMYK/YCCK.
import type { RgbImage } from './image.js';
import { checkPixelLimit, type ImageLimits } from './limits.js';

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

// Zigzag index → natural (row-major) index within the 8x8 block.
const ZIGZAG = Uint8Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
  28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
  54, 47, 55, 62, 63,
]);

// IDCT basis: COS[x*8 + u] = C(u)/2 * cos((2x+1)uπ/16).
const COS = (() => {
  const t = new Float64Array(64);
  for (let x = 0; x < 8; x++)
    for (let u = 0; u < 8; u++) t[x * 8 + u] = (u === 0 ? Math.SQRT1_2 : 1) * 0.5 * Math.cos(((2 * x + 1) * u * Math.PI) / 16);
  return t;
})();

/** 8x8 inverse DCT of `blk` (natural order, dequantised) into `out` as level-shifted, clamped samples. */
function idct8x8(blk: Float64Array, tmp: Float64Array, out: Uint8Array, outOff: number, outStride: number): void {
  let acZero = true;
  for (let i = 1; i < 64 && acZero; i++) acZero = blk[i] === 0;
  if (acZero) {
    // DC-only block (very common): constant output, skip the transform.
    const p = Math.round(blk[0]! / 8 + 128);
    const v = p < 0 ? 0 : p > 255 ? 255 : p;
    for (let y = 0; y < 8; y++) out.fill(v, outOff + y * outStride, outOff + y * outStride + 8);
    return;
  }
  for (let y = 0; y < 8; y++) {
    const r = y * 8;
    for (let x = 0; x < 8; x++) {
      let s = 0;
      const c = x * 8;
      for (let u = 0; u < 8; u++) s += COS[c + u]! * blk[r + u]!;
      tmp[r + x] = s;
    }
  }
  for (let x = 0; x < 8; x++) {
    for (let y = 0; y < 8; y++) {
      let s = 0;
      const c = y * 8;
      for (let v = 0; v < 8; v++) s += COS[c + v]! * tmp[v * 8 + x]!;
      const p = Math.round(s + 128);
      out[outOff + y * outStride + x] = p < 0 ? 0 : p > 255 ? 255 : p;
    }
  }
}

/** Huffman table as a 16-bit lookahead table: entry = (codeLength << 8) | symbol, 0 = invalid. */
function buildHuffman(counts: Uint8Array, symbols: Uint8Array): Uint16Array {
  const lut = new Uint16Array(1 << 16);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < counts[len - 1]!; i++) {
      const shift = 16 - len;
      const start = code << shift;
      const entry = (len << 8) | symbols[k++]!;
      lut.fill(entry, start, start + (1 << shift));
      code++;
    }
    code <<= 1;
  }
  return lut;
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Padded plane (whole MCUs) in blocks. */
  bw: number;
  bh: number;
  /** Real (downsampled) sample dimensions. */
  cw: number;
  ch: number;
  /** Quantised coefficients, 64 per block in natural order, block-row-major over bw x bh. */
  coefs: Int16Array;
  /** Quantisation table (natural order), latched at the component's first scan. */
  q: Int32Array | undefined;
  /** Decoded samples, filled after the last scan. */
  plane: Uint8Array;
  pred: number;
  dc: Uint16Array | undefined;
  ac: Uint16Array | undefined;
}

const SOF_NAMES: Record<number, string> = {
  0xc3: 'lossless JPEG (SOF3)',
  0xc5: 'differential sequential JPEG (SOF5)',
  0xc6: 'differential progressive JPEG (SOF6)',
  0xc7: 'differential lossless JPEG (SOF7)',
  0xc9: 'arithmetic-coded JPEG (SOF9)',
  0xca: 'arithmetic-coded progressive JPEG (SOF10)',
  0xcb: 'arithmetic-coded lossless JPEG (SOF11)',
  0xcd: 'arithmetic-coded differential JPEG (SOF13)',
  0xce: 'arithmetic-coded differential progressive JPEG (SOF14)',
  0xcf: 'arithmetic-coded differential lossless JPEG (SOF15)',
};

/** Decodes a baseline, extended-sequential or progressive Huffman JPEG to RGB. `name` is used in error messages. */
export function decodeJpeg(bytes: Uint8Array, name = '<jpeg>', limits: ImageLimits = {}): RgbImage {
  const fail = (msg: string): never => {
    throw new Error(`JPEG ${name}: ${msg}`);
  };
  if (!isJpeg(bytes)) {
    const got = Array.from(bytes.subarray(0, 3), (b) => b.toString(16).padStart(2, '0')).join(' ');
    fail(`bad signature: expected ff d8 ff, got ${got || '(empty file)'}`);
  }
  const qt: (Int32Array | undefined)[] = [];
  const dcTables: (Uint16Array | undefined)[] = [];
  const acTables: (Uint16Array | undefined)[] = [];
  let frame:
    | { width: number; height: number; comps: Component[]; hmax: number; vmax: number; mcusX: number; mcusY: number; progressive: boolean }
    | undefined;
  let restartInterval = 0;
  let adobeTransform = -1;
  let orientation = 1;
  let scans = 0;
  let pos = 2;
  const u16 = (o: number) => (bytes[o]! << 8) | bytes[o + 1]!;

  // Bit reader state, shared by the scan decoder. Stops at markers (feeds zeros) so a restart
  // marker or EOI is never consumed as data.
  let bitBuf = 0;
  let bitCnt = 0;
  let markerHit = false;
  let ranOff = false; // the reader went past the end of the file...
  let padBits = 0; // ...and appended this many zero bits; truncated iff some were consumed
  const fill = () => {
    while (bitCnt <= 24) {
      let b = 0;
      if (!markerHit) {
        if (pos >= bytes.length) ranOff = true;
        else {
          b = bytes[pos]!;
          if (b === 0xff) {
            const nxt = bytes[pos + 1];
            if (nxt === 0x00) pos += 2;
            else {
              markerHit = true;
              b = 0;
            }
          } else pos++;
        }
      }
      if (ranOff) padBits += 8;
      bitBuf = ((bitBuf << 8) | b) >>> 0;
      bitCnt += 8;
    }
  };
  const decodeHuff = (lut: Uint16Array): number => {
    if (bitCnt < 16) fill();
    const e = lut[(bitBuf >>> (bitCnt - 16)) & 0xffff]!;
    if (e === 0) fail(`corrupt data: invalid Huffman code near offset ${pos}`);
    bitCnt -= e >> 8;
    return e & 0xff;
  };
  const bits = (n: number): number => {
    if (n === 0) return 0;
    if (bitCnt < n) fill();
    const v = (bitBuf >>> (bitCnt - n)) & ((1 << n) - 1);
    bitCnt -= n;
    return v;
  };
  const receiveExtend = (n: number): number => {
    const v = bits(n);
    return n === 0 ? 0 : v < 1 << (n - 1) ? v - (1 << n) + 1 : v;
  };

  // Block decoders. `o` is the block's offset into c.coefs. Scan parameters live in these
  // variables (set per scan) so the hot functions keep a fixed signature.
  let ss = 0, se = 63, ah = 0, al = 0, eobrun = 0;
  const decodeDc = (c: Component, o: number) => {
    const t = decodeHuff(c.dc!);
    if (t > 11) fail(`corrupt data: DC magnitude category ${t} > 11`);
    c.pred += receiveExtend(t);
    c.coefs[o] = c.pred * (1 << al);
  };
  const decodeBaseline = (c: Component, o: number) => {
    decodeDc(c, o);
    for (let k = 1; k < 64; ) {
      const rs = decodeHuff(c.ac!);
      const s = rs & 15;
      const r = rs >> 4;
      if (s === 0) {
        if (r === 15) {
          k += 16;
          continue;
        }
        break; // EOB
      }
      k += r;
      if (k > 63) fail(`corrupt data: AC coefficient index ${k} > 63`);
      c.coefs[o + ZIGZAG[k]!] = receiveExtend(s);
      k++;
    }
  };
  const decodeDcRefine = (c: Component, o: number) => {
    if (bits(1)) c.coefs[o] |= 1 << al;
  };
  const decodeAcFirst = (c: Component, o: number) => {
    if (eobrun > 0) {
      eobrun--;
      return;
    }
    for (let k = ss; k <= se; ) {
      const rs = decodeHuff(c.ac!);
      const s = rs & 15;
      const r = rs >> 4;
      if (s === 0) {
        if (r < 15) {
          eobrun = (1 << r) - 1 + bits(r); // this block's EOB counts as one
          break;
        }
        k += 16;
        continue;
      }
      k += r;
      if (k > 63) fail(`corrupt data: AC coefficient index ${k} > 63`);
      c.coefs[o + ZIGZAG[k]!] = receiveExtend(s) * (1 << al);
      k++;
    }
  };
  // Successive-approximation AC refinement (ITU T.81 G.1.2.3; mirrors libjpeg's decode_mcu_AC_refine).
  const decodeAcRefine = (c: Component, o: number) => {
    const p1 = 1 << al;
    const m1 = -1 << al;
    const co = c.coefs;
    let k = ss;
    const correct = (idx: number) => {
      if (bits(1) && (co[idx]! & p1) === 0) co[idx] += co[idx]! >= 0 ? p1 : m1;
    };
    if (eobrun === 0) {
      for (; k <= se; k++) {
        const rs = decodeHuff(c.ac!);
        let r = rs >> 4;
        let s = rs & 15;
        if (s) {
          if (s !== 1) fail(`corrupt data: refinement coefficient magnitude ${s} (expected 1)`);
          s = bits(1) ? p1 : m1;
        } else if (r !== 15) {
          eobrun = (1 << r) + bits(r);
          break;
        }
        // Skip r zero-history coefficients (refining non-zero ones on the way), land on the next zero.
        while (k <= se) {
          const idx = o + ZIGZAG[k]!;
          if (co[idx] !== 0) correct(idx);
          else if (--r < 0) break;
          k++;
        }
        if (s && k <= se) co[o + ZIGZAG[k]!] = s;
      }
    }
    if (eobrun > 0) {
      for (; k <= se; k++) {
        const idx = o + ZIGZAG[k]!;
        if (co[idx] !== 0) correct(idx);
      }
      eobrun--;
    }
  };

  const decodeScan = (sc: Component[]) => {
    const f = frame!;
    bitBuf = 0;
    bitCnt = 0;
    markerHit = false;
    padBits = 0;
    eobrun = 0;
    for (const c of sc) c.pred = 0;
    const decodeBlock = !f.progressive
      ? decodeBaseline
      : ss === 0
        ? ah === 0 ? decodeDc : decodeDcRefine
        : ah === 0 ? decodeAcFirst : decodeAcRefine;
    const at = (c: Component, row: number, col: number) => decodeBlock(c, (row * c.bw + col) * 64);
    // A single-component scan is non-interleaved: its MCU is one block and it covers only the
    // component's real extent, not the padded MCU grid.
    const single = sc.length === 1;
    const c0 = sc[0]!;
    const perRow = single ? Math.ceil(c0.cw / 8) : f.mcusX;
    const total = single ? perRow * Math.ceil(c0.ch / 8) : f.mcusX * f.mcusY;
    for (let m = 0; m < total; m++) {
      if (restartInterval && m > 0 && m % restartInterval === 0) {
        // Byte-align, then expect RSTn exactly where the bit reader stopped.
        bitBuf = 0;
        bitCnt = 0;
        markerHit = false;
        while (pos < bytes.length && bytes[pos] === 0xff && bytes[pos + 1] === 0xff) pos++;
        const mk = bytes[pos + 1];
        if (bytes[pos] !== 0xff || mk === undefined || mk < 0xd0 || mk > 0xd7) {
          fail(`expected restart marker (RST0-7) at offset ${pos} after ${m} MCUs, found ${mk === undefined ? 'end of file' : `${bytes[pos]!.toString(16)} ${mk.toString(16)}`}`);
        }
        pos += 2;
        for (const c of sc) c.pred = 0;
        eobrun = 0;
      }
      const my = Math.floor(m / perRow);
      const mx = m % perRow;
      if (single) at(c0, my, mx);
      else
        for (const c of sc)
          for (let v = 0; v < c.v; v++) for (let h = 0; h < c.h; h++) at(c, my * c.v + v, mx * c.h + h);
      if (ranOff && padBits > bitCnt) fail(`truncated: entropy-coded data ends after ${m + 1} of ${total} MCUs`);
    }
    // Skip to the next marker (padding bits/fill bytes may remain).
    while (pos < bytes.length && !(bytes[pos] === 0xff && bytes[pos + 1] !== 0 && bytes[pos + 1] !== 0xff)) pos++;
  };

  for (;;) {
    if (pos >= bytes.length) {
      // Tolerate a missing EOI once an image has been decoded (common in scraped data).
      if (scans > 0) break;
      fail(`truncated: file ends at offset ${pos} before any image data`);
    }
    if (bytes[pos] !== 0xff) fail(`expected a marker at offset ${pos}, got byte 0x${bytes[pos]!.toString(16)}`);
    while (bytes[pos + 1] === 0xff) pos++; // fill bytes
    const marker = bytes[pos + 1];
    if (marker === undefined) fail(`truncated: file ends inside a marker at offset ${pos}`);
    pos += 2;
    const mk = marker!;
    if (mk === 0xd9) break; // EOI
    if (mk === 0x01 || (mk >= 0xd0 && mk <= 0xd7)) continue; // standalone markers
    if (mk === 0xd8) fail(`unexpected second SOI marker at offset ${pos - 2}`);
    if (pos + 2 > bytes.length) fail(`truncated: segment length of marker 0x${mk.toString(16)} missing at offset ${pos}`);
    const len = u16(pos);
    if (len < 2 || pos + len > bytes.length) {
      fail(`truncated: marker 0x${mk.toString(16)} at offset ${pos - 2} declares ${len} bytes, only ${bytes.length - pos} remain`);
    }
    const seg = bytes.subarray(pos + 2, pos + len);
    const segEnd = pos + len;
    switch (mk) {
      case 0xdb: { // DQT
        let o = 0;
        while (o < seg.length) {
          const pq = seg[o]! >> 4;
          const tq = seg[o]! & 15;
          if (tq > 3) fail(`DQT table id ${tq} > 3`);
          o++;
          const t = new Int32Array(64); // stored in natural order
          for (let i = 0; i < 64; i++) t[ZIGZAG[i]!] = pq ? (seg[o + 2 * i]! << 8) | seg[o + 2 * i + 1]! : seg[o + i]!;
          o += pq ? 128 : 64;
          if (o > seg.length) fail('truncated DQT segment');
          qt[tq] = t;
        }
        break;
      }
      case 0xc4: { // DHT
        let o = 0;
        while (o < seg.length) {
          const tc = seg[o]! >> 4;
          const th = seg[o]! & 15;
          if (tc > 1 || th > 3) fail(`DHT invalid table class/id ${tc}/${th}`);
          const counts = seg.subarray(o + 1, o + 17);
          const n = counts.reduce((a, b) => a + b, 0);
          if (o + 17 + n > seg.length) fail('truncated DHT segment');
          const lut = buildHuffman(counts, seg.subarray(o + 17, o + 17 + n));
          (tc === 0 ? dcTables : acTables)[th] = lut;
          o += 17 + n;
        }
        break;
      }
      case 0xdd: // DRI
        restartInterval = u16(pos + 2);
        break;
      case 0xc0:
      case 0xc1:
      case 0xc2: { // SOF0 baseline, SOF1 extended sequential, SOF2 progressive (all Huffman)
        if (frame) fail('multiple frames (SOF markers) are not supported');
        const precision = seg[0]!;
        if (precision !== 8) fail(`unsupported: ${precision}-bit sample precision (only 8-bit)`);
        const height = u16(pos + 3);
        const width = u16(pos + 5);
        const nc = seg[5]!;
        if (height === 0) fail('unsupported: height 0 in SOF (DNL-defined height)');
        if (width === 0) fail('invalid width 0 in SOF');
        checkPixelLimit(width, height, limits, fail);
        if (nc !== 1 && nc !== 3) {
          fail(nc === 4 ? 'unsupported: CMYK/YCCK JPEG (4 components)' : `unsupported: ${nc} colour components`);
        }
        const raw = [];
        for (let i = 0; i < nc; i++) {
          const o = 6 + i * 3;
          const hv = seg[o + 1]!;
          raw.push({ id: seg[o]!, h: hv >> 4, v: hv & 15, tq: seg[o + 2]! });
        }
        if (raw.some((c) => c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4)) fail('invalid sampling factors in SOF');
        const hmax = Math.max(...raw.map((c) => c.h));
        const vmax = Math.max(...raw.map((c) => c.v));
        if (raw.some((c) => hmax % c.h !== 0 || vmax % c.v !== 0)) {
          fail(`unsupported: non-integral chroma subsampling ${raw.map((c) => `${c.h}x${c.v}`).join(',')}`);
        }
        const mcusX = Math.ceil(width / (8 * hmax));
        const mcusY = Math.ceil(height / (8 * vmax));
        const comps: Component[] = raw.map((c) => {
          // A 1-component frame is always coded as non-interleaved single blocks.
          const bw = nc === 1 ? Math.ceil(width / 8) : mcusX * c.h;
          const bh = nc === 1 ? Math.ceil(height / 8) : mcusY * c.v;
          return {
            ...c,
            bw, bh,
            cw: Math.ceil((width * c.h) / hmax),
            ch: Math.ceil((height * c.v) / vmax),
            coefs: new Int16Array(bw * bh * 64),
            q: undefined,
            plane: new Uint8Array(0),
            pred: 0,
            dc: undefined,
            ac: undefined,
          };
        });
        frame = { width, height, comps, hmax, vmax, mcusX, mcusY, progressive: mk === 0xc2 };
        break;
      }
      case 0xda: { // SOS
        if (!frame) fail('SOS before SOF');
        const ns = seg[0]!;
        if (ns < 1 || ns > 4 || seg.length < 1 + ns * 2 + 3) fail(`invalid SOS header (${ns} components, ${seg.length} bytes)`);
        ss = seg[1 + ns * 2]!;
        se = seg[2 + ns * 2]!;
        ah = seg[3 + ns * 2]! >> 4;
        al = seg[3 + ns * 2]! & 15;
        const prog = frame!.progressive;
        if (!prog) { ss = 0; se = 63; ah = 0; al = 0; }
        else if (ss > se || se > 63 || (ss === 0 && se !== 0) || (ss > 0 && ns !== 1) || al > 13) {
          fail(`invalid progressive scan parameters Ss=${ss} Se=${se} Ah=${ah} Al=${al} for ${ns} component(s)`);
        }
        const sc: Component[] = [];
        for (let i = 0; i < ns; i++) {
          const cid = seg[1 + i * 2]!;
          const t = seg[2 + i * 2]!;
          const c = frame!.comps.find((x) => x.id === cid);
          if (!c) fail(`SOS references unknown component id ${cid}`);
          // Only the tables this scan actually uses must exist (DC refinement uses none).
          const needDc = !prog || (ss === 0 && ah === 0);
          const needAc = !prog || ss > 0;
          c!.dc = dcTables[t >> 4];
          c!.ac = acTables[t & 15];
          if ((needDc && !c!.dc) || (needAc && !c!.ac)) fail(`SOS component ${cid} uses undefined Huffman table ${t >> 4}/${t & 15}`);
          if (!c!.q) {
            if (!qt[c!.tq]) fail(`component ${cid} uses undefined quantisation table ${c!.tq}`);
            c!.q = qt[c!.tq]!.slice();
          }
          sc.push(c!);
        }
        pos = segEnd;
        decodeScan(sc);
        scans++;
        continue; // pos already at the next marker
      }
      case 0xe1: // APP1 Exif: the Orientation tag (how a camera was held)
        if (orientation === 1) orientation = exifOrientation(seg);
        break;
      case 0xee: // APP14 Adobe: colour transform flag
        if (seg.length >= 12 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') adobeTransform = seg[11]!;
        break;
      default:
        if (SOF_NAMES[mk]) fail(`unsupported: ${SOF_NAMES[mk]}`);
      // APPn, COM, and anything else with a length: skip.
    }
    pos = segEnd;
  }
  if (!frame) fail('no frame header (SOF) found');
  if (scans === 0) fail('no scan (SOS) found');
  // Dequantise + IDCT every block of every component.
  const blk = new Float64Array(64);
  const tmp = new Float64Array(64);
  for (const c of frame!.comps) {
    if (!c.q) fail(`component ${c.id} never appears in a scan`);
    const stride = c.bw * 8;
    c.plane = new Uint8Array(stride * c.bh * 8);
    for (let row = 0; row < c.bh; row++)
      for (let col = 0; col < c.bw; col++) {
        const o = (row * c.bw + col) * 64;
        for (let i = 0; i < 64; i++) blk[i] = c.coefs[o + i]! * c.q![i]!;
        idct8x8(blk, tmp, c.plane, row * 8 * stride + col * 8, stride);
      }
  }
  const rgb = toRgb(frame!, adobeTransform);
  return limits.exifOrientation === false ? rgb : orient(rgb, orientation);
}

/** The Exif Orientation (tag 0x0112 in IFD0, 1..8) of an APP1 segment's body, or 1 when absent or unreadable. */
export function exifOrientation(seg: Uint8Array): number {
  if (seg.length < 14 || String.fromCharCode(...seg.subarray(0, 6)) !== 'Exif\0\0') return 1;
  const t = seg.subarray(6);
  const le = t[0] === 0x49 && t[1] === 0x49; // 'II' little-endian, 'MM' big-endian
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return 1;
  const u16 = (o: number) => (o + 2 > t.length ? -1 : le ? t[o]! | (t[o + 1]! << 8) : (t[o]! << 8) | t[o + 1]!);
  const u32 = (o: number) => (o + 4 > t.length ? -1 : le ? (t[o]! | (t[o + 1]! << 8) | (t[o + 2]! << 16) | (t[o + 3]! << 24)) >>> 0 : ((t[o]! << 24) | (t[o + 1]! << 16) | (t[o + 2]! << 8) | t[o + 3]!) >>> 0);
  const ifd = u32(4);
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + 12 * i;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/**
 * Applies an Exif orientation so the image is upright as shown by viewers (PIL's ImageOps.exif_transpose):
 * 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 anticlockwise.
 */
export function orient(img: RgbImage, orientation: number): RgbImage {
  if (orientation === 1) return img;
  const { width: w, height: h, data } = img;
  const swap = orientation >= 5;
  const [ow, oh] = swap ? [h, w] : [w, h];
  const out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number;
      let sy: number;
      switch (orientation) {
        case 2: [sx, sy] = [w - 1 - x, y]; break;
        case 3: [sx, sy] = [w - 1 - x, h - 1 - y]; break;
        case 4: [sx, sy] = [x, h - 1 - y]; break;
        case 5: [sx, sy] = [y, x]; break;
        case 6: [sx, sy] = [y, h - 1 - x]; break;
        case 7: [sx, sy] = [w - 1 - y, h - 1 - x]; break;
        default: [sx, sy] = [w - 1 - y, x]; break; // 8
      }
      const s = (sy * w + sx) * 3;
      const o = (y * ow + x) * 3;
      out[o] = data[s]!;
      out[o + 1] = data[s + 1]!;
      out[o + 2] = data[s + 2]!;
    }
  }
  return { width: ow, height: oh, data: out };
}

/**
 * Component c upsampled to the full width x height, with libjpeg-style "fancy" (triangular)
 * upsampling for 2x1, 1x2 and 2x2; other ratios replicate samples, as libjpeg does.
 */
function upsample(c: Component, hmax: number, vmax: number, width: number, height: number): Uint8Array {
  const hs = hmax / c.h;
  const vs = vmax / c.v;
  const stride = c.bw * 8;
  const p = c.plane;
  const cw = c.cw;
  const ch = c.ch;
  const out = new Uint8Array(width * height);
  const fancy = cw > 2;
  const rowOf = (j: number) => (j < 0 ? 0 : j >= ch ? ch - 1 : j) * stride;
  if (hs === 1 && vs === 1) {
    for (let y = 0; y < height; y++) out.set(p.subarray(y * stride, y * stride + width), y * width);
  } else if (fancy && hs === 2 && vs === 1) {
    for (let y = 0; y < height; y++) {
      const r = rowOf(y);
      const o = y * width;
      for (let x = 0; x < width; x++) {
        const i = x >> 1;
        const near = 3 * p[r + i]!;
        out[o + x] = x & 1 ? (near + p[r + (i + 1 < cw ? i + 1 : cw - 1)]! + 2) >> 2 : (near + p[r + (i > 0 ? i - 1 : 0)]! + 1) >> 2;
      }
    }
  } else if (fancy && hs === 1 && vs === 2) {
    for (let y = 0; y < height; y++) {
      const j = y >> 1;
      const r0 = rowOf(j);
      const r1 = rowOf(y & 1 ? j + 1 : j - 1);
      const bias = y & 1 ? 2 : 1;
      const o = y * width;
      for (let x = 0; x < width; x++) out[o + x] = (3 * p[r0 + x]! + p[r1 + x]! + bias) >> 2;
    }
  } else if (fancy && hs === 2 && vs === 2) {
    const cs = new Int32Array(cw);
    for (let y = 0; y < height; y++) {
      const j = y >> 1;
      const r0 = rowOf(j);
      const r1 = rowOf(y & 1 ? j + 1 : j - 1);
      for (let i = 0; i < cw; i++) cs[i] = 3 * p[r0 + i]! + p[r1 + i]!;
      const o = y * width;
      for (let x = 0; x < width; x++) {
        const i = x >> 1;
        out[o + x] = x & 1 ? (3 * cs[i]! + cs[i + 1 < cw ? i + 1 : cw - 1]! + 7) >> 4 : (3 * cs[i]! + cs[i > 0 ? i - 1 : 0]! + 8) >> 4;
      }
    }
  } else {
    for (let y = 0; y < height; y++) {
      const r = Math.floor(y / vs) * stride;
      for (let x = 0; x < width; x++) out[y * width + x] = p[r + Math.floor(x / hs)]!;
    }
  }
  return out;
}

// libjpeg's fixed-point YCbCr→RGB (jdcolor.c) for bit-identical colour conversion.
const FIX = (v: number) => Math.round(v * 65536);
const HALF = 1 << 15;

function toRgb(f: { width: number; height: number; comps: Component[]; hmax: number; vmax: number }, adobeTransform: number): RgbImage {
  const { width, height, comps } = f;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const planes = comps.map((c) => upsample(c, f.hmax, f.vmax, width, height));
  if (comps.length === 1) {
    const g = planes[0]!;
    for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = g[i]!;
    return { width, height, data: out };
  }
  const [p0, p1, p2] = planes as [Uint8Array, Uint8Array, Uint8Array];
  const ids = comps.map((c) => c.id);
  const isRgb = adobeTransform === 0 || (adobeTransform < 0 && ids[0] === 82 && ids[1] === 71 && ids[2] === 66);
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);
  const crR = FIX(1.402), cbG = FIX(0.34414), crG = FIX(0.71414), cbB = FIX(1.772);
  for (let i = 0; i < n; i++) {
    const o = i * 3;
    if (isRgb) {
      out[o] = p0[i]!; out[o + 1] = p1[i]!; out[o + 2] = p2[i]!;
      continue;
    }
    const y = p0[i]!;
    const cb = p1[i]! - 128;
    const cr = p2[i]! - 128;
    out[o] = clamp(y + ((crR * cr + HALF) >> 16));
    out[o + 1] = clamp(y + ((-cbG * cb - crG * cr + HALF) >> 16));
    out[o + 2] = clamp(y + ((cbB * cb + HALF) >> 16));
  }
  return { width, height, data: out };
}
