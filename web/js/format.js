// Payload formats: how a message's bytes are shown (text, pretty JSON,
// hex, base64) and how a typed payload becomes bytes for publishing.

const utf8 = new TextDecoder('utf-8', { fatal: false });
const strict = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

export const FORMATS = ['text', 'json', 'hex', 'base64'];

export function toText(bytes) {
  return utf8.decode(bytes);
}

// Whether the bytes are valid UTF-8 (to pick a sensible default view).
export function isText(bytes) {
  try { strict.decode(bytes); return true; } catch { return false; }
}

export function toHex(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    out += bytes[i].toString(16).padStart(2, '0');
    out += (i % 16 === 15) ? '\n' : ' ';
  }
  return out.trimEnd();
}

export function toBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

// Pretty JSON, or null when the payload is not JSON.
export function toJson(bytes) {
  try { return JSON.stringify(JSON.parse(toText(bytes)), null, 2); } catch { return null; }
}

export function render(bytes, format) {
  switch (format) {
    case 'hex': return toHex(bytes);
    case 'base64': return toBase64(bytes);
    case 'json': return toJson(bytes) ?? '(not valid JSON)\n' + toText(bytes);
    default: return toText(bytes);
  }
}

// The bytes a publish form payload stands for; throws on bad input.
export function parsePayload(text, format) {
  switch (format) {
    case 'hex': {
      const clean = text.replace(/\s+/g, '');
      if (clean.length % 2 || /[^0-9a-fA-F]/.test(clean)) throw new Error('hex payload: pairs of hex digits');
      const out = new Uint8Array(clean.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
      return out;
    }
    case 'base64': {
      let bin;
      try { bin = atob(text.replace(/\s+/g, '')); } catch { throw new Error('base64 payload is not valid'); }
      return Uint8Array.from(bin, (c) => c.charCodeAt(0));
    }
    case 'json':
      JSON.parse(text); // throws with the position of the mistake
      return encoder.encode(text);
    default:
      return encoder.encode(text);
  }
}

// A number from a payload: the whole payload, or a field of a JSON
// object given as a dotted path ("a.b.0"). NaN when there is none.
export function numberOf(bytes, field) {
  const text = toText(bytes).trim();
  if (!field) return text === '' ? NaN : Number(text);
  let v;
  try { v = JSON.parse(text); } catch { return NaN; }
  for (const k of field.split('.')) {
    if (v === null || typeof v !== 'object') return NaN;
    v = v[k];
  }
  return typeof v === 'number' ? v : (typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN);
}

// MQTT topic filter matching (+ and #), for colours and view filters.
export function topicMatches(filter, topic) {
  if (filter.startsWith('$share/')) filter = filter.split('/').slice(2).join('/');
  const f = filter.split('/'); const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '#' || f[0] === '+')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
