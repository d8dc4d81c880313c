/**
 * Writes .tar.gz and .zip archives without external tools, so `deno task release` runs the same
 * on any machine. Entries carry a fixed time and owner, so a release is reproducible.
 * @module
 */

export interface Entry {
  /** Path inside the archive, with `/` separators. */
  path: string;
  data: Uint8Array;
  /** Unix permission bits, e.g. 0o755 for a program. */
  mode: number;
}

const encoder = new TextEncoder();

/** A ustar header field: text padded with NULs to `size` bytes. */
function field(header: Uint8Array, offset: number, size: number, text: string): void {
  const bytes = encoder.encode(text);
  if (bytes.length > size) throw new Error(`tar: '${text}' does not fit in ${size} bytes`);
  header.set(bytes, offset);
}

const octal = (value: number, size: number) => value.toString(8).padStart(size - 1, "0");

function tarHeader(path: string, size: number, mode: number, mtime: number, dir: boolean) {
  const header = new Uint8Array(512);
  // Names past 100 bytes go in the ustar prefix field (155 bytes) split at a `/`.
  let name = path;
  let prefix = "";
  if (encoder.encode(path).length > 100) {
    const cut = path.lastIndexOf("/", 155);
    if (cut < 0) throw new Error(`tar: path too long: ${path}`);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  field(header, 0, 100, name);
  field(header, 100, 8, octal(mode, 8));
  field(header, 108, 8, octal(0, 8));
  field(header, 116, 8, octal(0, 8));
  field(header, 124, 12, octal(size, 12));
  field(header, 136, 12, octal(mtime, 12));
  header.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  header[156] = dir ? 0x35 : 0x30;
  field(header, 257, 6, "ustar");
  field(header, 263, 2, "00");
  field(header, 265, 32, "root");
  field(header, 297, 32, "root");
  field(header, 345, 155, prefix);
  const sum = header.reduce((total, byte) => total + byte, 0);
  field(header, 148, 8, octal(sum, 7) + "\0");
  return header;
}

/** The directories above every entry, parents first, so extraction sets their modes. */
function directories(entries: Entry[]): string[] {
  const dirs = new Set<string>();
  for (const { path } of entries) {
    const parts = path.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return [...dirs].sort();
}

async function compress(chunks: Uint8Array[], format: CompressionFormat): Promise<Uint8Array> {
  const stream = ReadableStream.from(chunks as Uint8Array<ArrayBuffer>[])
    .pipeThrough(new CompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A gzip-compressed ustar archive of `entries`, each dated `mtime` (seconds since 1970). */
export async function tarGz(entries: Entry[], mtime: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (const dir of directories(entries)) chunks.push(tarHeader(`${dir}/`, 0, 0o755, mtime, true));
  for (const entry of entries) {
    chunks.push(tarHeader(entry.path, entry.data.length, entry.mode, mtime, false));
    chunks.push(entry.data);
    const pad = (512 - entry.data.length % 512) % 512;
    if (pad) chunks.push(new Uint8Array(pad));
  }
  chunks.push(new Uint8Array(1024));
  return await compress(chunks, "gzip");
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC_TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** MS-DOS date and time of a Unix time, as zip stores them. */
function dosTime(mtime: number): { time: number; date: number } {
  const d = new Date(mtime * 1000);
  return {
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
    date: ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
  };
}

/** A zip archive of `entries` (deflated), each dated `mtime`; Unix modes kept for unzip. */
export async function zip(entries: Entry[], mtime: number): Promise<Uint8Array> {
  const { time, date } = dosTime(mtime);
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = encoder.encode(entry.path);
    const packed = await compress([entry.data], "deflate-raw");
    const crc = crc32(entry.data);
    if (packed.length >= 0xffffffff || entry.data.length >= 0xffffffff) {
      throw new Error(`zip: ${entry.path} is too large for a zip without zip64`);
    }
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true); // version needed: 2.0 (deflate)
    local.setUint16(6, 0x0800, true); // names are UTF-8
    local.setUint16(8, 8, true); // deflate
    local.setUint16(10, time, true);
    local.setUint16(12, date, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, packed.length, true);
    local.setUint32(22, entry.data.length, true);
    local.setUint16(26, name.length, true);
    const head = new DataView(new ArrayBuffer(46));
    head.setUint32(0, 0x02014b50, true);
    head.setUint16(4, (3 << 8) | 20, true); // made by Unix, so unzip applies the mode
    head.setUint16(6, 20, true);
    head.setUint16(8, 0x0800, true);
    head.setUint16(10, 8, true);
    head.setUint16(12, time, true);
    head.setUint16(14, date, true);
    head.setUint32(16, crc, true);
    head.setUint32(20, packed.length, true);
    head.setUint32(24, entry.data.length, true);
    head.setUint16(28, name.length, true);
    head.setUint32(38, ((0o100000 | entry.mode) << 16) >>> 0, true);
    head.setUint32(42, offset, true);
    parts.push(new Uint8Array(local.buffer), name, packed);
    central.push(new Uint8Array(head.buffer), name);
    offset += 30 + name.length + packed.length;
  }
  const size = central.reduce((total, part) => total + part.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  const all = [...parts, ...central, new Uint8Array(end.buffer)];
  const out = new Uint8Array(all.reduce((total, part) => total + part.length, 0));
  let at = 0;
  for (const part of all) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
