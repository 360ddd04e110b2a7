// The page's CPace: every ristretto255/SHA-512 value of the CFRG draft's
// test vectors (draft-irtf-cfrg-cpace appendix), the refused points, and
// ferry's key confirmation and HKDF between an A and a B. If the Rust side
// has written test/pake-ferry.json, the page must agree with it field by field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  calculateGenerator, decodePakeMessage, encodeConfirm, encodeCpace, generatorString, isk,
  lvCat, prependLen, scalarFromBytes, scalarMultVfy, start,
} from '../pake.js';

const hex = (s) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b) => Buffer.from(b).toString('hex');
const ascii = (s) => new TextEncoder().encode(s);
const range = (n) => Uint8Array.from({ length: n }, (_, i) => i);

// draft-irtf-cfrg-cpace, "Test vector for CPace using group ristretto255 and hash SHA-512".
const V = {
  PRS: ascii('Password'),
  CI: hex('0b415f696e69746961746f720b425f726573706f6e646572'),
  sid: hex('7e4b4791d6a8ef019b936c79fb7f2c57'),
  genStr: hex(`11435061636552697374726574746f3235350850617373776f726464
    00000000000000000000000000000000000000000000000000000000
    00000000000000000000000000000000000000000000000000000000
    00000000000000000000000000000000000000000000000000000000
    00000000000000000000000000000000180b415f696e69746961746f
    720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f
    2c57`),
  hash: `da6d3ddc8802fca9058755ffd3ebde08a9c2c74945901a258482a288
    b6663af06bf645c93cd1c51512307199c80e84908916d983b34af772
    05f90851a657ee27`,
  g: '222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56',
  ADa: ascii('ADa'),
  ya: 'da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08',
  Ya: 'd6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157',
  ADb: ascii('ADb'),
  yb: 'd2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d',
  Yb: '3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258',
  K: '80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f',
  transcriptIr: `20d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0e
    ec482b915703414461203ea7e0b19560d7c0b0f5734f63b955286dfa
    8232b5ebe63324e2d9e7433f725803414462`,
  iskInput: `15435061636552697374726574746f3235355f49534b107e4b4791d6
    a8ef019b936c79fb7f2c572080b69a8a76457ab6a4d7f887a4bf6b55
    a2f80ac19c333f917a05fc9887c8b40f20d6bac480f2c386c394efc7
    c47adb9925dcd2630b64f240c50f8d0eec482b915703414461203ea7
    e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f
    725803414462`,
  iskIr: `b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dc
    ae7b35cd2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c
    3fa2068af7900447`,
};

test('prepend_len and lv_cat match the draft', () => {
  assert.equal(toHex(prependLen(new Uint8Array(0))), '00');
  assert.equal(toHex(prependLen(ascii('1234'))), '0431323334');
  assert.equal(toHex(prependLen(range(127))), '7f' + toHex(range(127)));
  // 128 needs a second LEB128 byte.
  assert.equal(toHex(prependLen(range(128))), '8001' + toHex(range(128)));
  // transcript_ir is lv_cat(Ya, ADa) || lv_cat(Yb, ADb).
  const ir = (a, ada, b, adb) => toHex(new Uint8Array([...lvCat(a, ada), ...lvCat(b, adb)]));
  assert.equal(ir(ascii('123'), ascii('PartyA'), ascii('234'), ascii('PartyB')), '03313233065061727479410332333406506172747942');
  assert.equal(ir(ascii('3456'), ascii('PartyA'), ascii('2345'), ascii('PartyB')), '043334353606506172747941043233343506506172747942');
});

test('generator string, its hash and g match the draft', async () => {
  const { sha512 } = await import('../vendor/noble-hashes/sha2.js');
  const gs = generatorString(V.PRS, V.CI, V.sid);
  assert.equal(gs.length, 170);
  assert.equal(toHex(gs), toHex(V.genStr));
  assert.equal(toHex(sha512(gs)), toHex(hex(V.hash)));
  assert.equal(toHex(calculateGenerator(V.PRS, V.CI, V.sid).toBytes()), V.g);
});

test('Ya, Yb, K and ISK (initiator/responder) match the draft', () => {
  const g = calculateGenerator(V.PRS, V.CI, V.sid);
  const ya = scalarFromBytes(hex(V.ya));
  const yb = scalarFromBytes(hex(V.yb));
  assert.equal(toHex(g.multiply(ya).toBytes()), V.Ya);
  assert.equal(toHex(g.multiply(yb).toBytes()), V.Yb);
  assert.equal(toHex(scalarMultVfy(ya, hex(V.Yb))), V.K);
  assert.equal(toHex(scalarMultVfy(yb, hex(V.Ya))), V.K);
  const ir = new Uint8Array([...lvCat(hex(V.Ya), V.ADa), ...lvCat(hex(V.Yb), V.ADb)]);
  assert.equal(toHex(ir), toHex(hex(V.transcriptIr)));
  assert.equal(
    toHex(new Uint8Array([...lvCat(ascii('CPaceRistretto255_ISK'), V.sid, hex(V.K)), ...ir])),
    toHex(hex(V.iskInput)),
  );
  assert.equal(toHex(isk(hex(V.K), hex(V.Ya), hex(V.Yb), V.sid, V.ADa, V.ADb)), toHex(hex(V.iskIr)));
});

test('scalar_mult_vfy: the draft valid case, and Y_i1 and the identity refused', () => {
  const s = scalarFromBytes(hex('7cd0e075fa7955ba52c02759a6c90dbbfc10e6d40aea8d283e407d88cf538a05'));
  const X = hex('2c3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c');
  assert.equal(toHex(scalarMultVfy(s, X)), '7c13645fe790a468f62c39beb7388e541d8405d1ade69d1778c5fe3e7f6b600e');
  const Yi1 = hex('2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c');
  const Yi2 = new Uint8Array(32);
  assert.throws(() => scalarMultVfy(s, Yi1), /invalid CPace point/);
  assert.throws(() => scalarMultVfy(s, Yi2), /identity/);
  // The same through the protocol object, as a peer's message.
  const a = start('7-acid-zinc-plaza', 'a');
  assert.throws(() => a.finish(Yi1), /invalid CPace point/);
  assert.throws(() => a.finish(Yi2), /identity/);
  assert.throws(() => a.finish(new Uint8Array(31)), /invalid CPace point/);
});

test('scalars: top 4 bits cleared, zero refused, random ones differ', () => {
  const ff = new Uint8Array(32).fill(0xff);
  assert.equal(scalarFromBytes(ff), (1n << 252n) - 1n);
  assert.throws(() => scalarFromBytes(new Uint8Array(32)), /zero/);
  const zeroAfterMask = new Uint8Array(32);
  zeroAfterMask[31] = 0xf0;
  assert.throws(() => scalarFromBytes(zeroAfterMask), /zero/);
  assert.notEqual(toHex(start('1-a-b-c', 'a').message), toHex(start('1-a-b-c', 'a').message));
});

function run(codeA, codeB) {
  const a = start(codeA, 'a');
  const b = start(codeB, 'b');
  // B sends cpace:Yb first; A answers cpace:Ya then confirm:Ta; B sends confirm:Tb.
  const fromB = decodePakeMessage(encodeCpace(b.message));
  assert.equal(fromB.kind, 'cpace');
  const fa = a.finish(fromB.bytes);
  const fromA = decodePakeMessage(encodeCpace(a.message));
  const fb = b.finish(fromA.bytes);
  const ta = decodePakeMessage(encodeConfirm(fa.myTag));
  const tb = decodePakeMessage(encodeConfirm(fb.myTag));
  assert.equal(ta.kind, 'confirm');
  return { fa, fb, aOk: fa.checkPeerTag(tb.bytes), bOk: fb.checkPeerTag(ta.bytes) };
}

test('A and B with the same code agree on ISK, key and room id, and both tags check', () => {
  const { fa, fb, aOk, bOk } = run('7-acid-zinc-plaza', '7-acid-zinc-plaza');
  assert.ok(aOk && bOk);
  assert.equal(toHex(fa.isk), toHex(fb.isk));
  assert.equal(fa.isk.length, 64);
  assert.equal(toHex(fa.key), toHex(fb.key));
  assert.equal(fa.key.length, 32);
  assert.match(fa.roomId, /^[0-9a-f]{32}$/);
  assert.equal(fa.roomId, fb.roomId);
  assert.notEqual(toHex(fa.myTag), toHex(fb.myTag));
  // A's own tag is not accepted as B's: the tags are bound to the role.
  assert.equal(fa.checkPeerTag(fa.myTag), false);
  assert.equal(fa.checkPeerTag(fb.myTag.subarray(0, 63)), false);
});

test('a wrong code on one side makes both tag checks fail', () => {
  const { fa, fb, aOk, bOk } = run('7-acid-zinc-plaza', '7-acid-zinc-plazz');
  assert.equal(aOk, false);
  assert.equal(bOk, false);
  assert.notEqual(toHex(fa.key), toHex(fb.key));
  assert.throws(() => start('7-acid-zinc-plaza', 'c'), /role/);
});

test('wire strings: lengths, round trip, and anything else is null', () => {
  const Y = range(32);
  const T = range(64);
  const c = encodeCpace(Y);
  const t = encodeConfirm(T);
  assert.equal(c.length, 'cpace:'.length + 43);
  assert.equal(t.length, 'confirm:'.length + 86);
  assert.deepEqual(decodePakeMessage(c), { kind: 'cpace', bytes: Y });
  assert.deepEqual(decodePakeMessage(t), { kind: 'confirm', bytes: T });
  assert.match(encodeCpace(new Uint8Array(32).fill(0xff)), /^cpace:[A-Za-z0-9_-]{43}$/);
  for (const bad of [
    'cpace:', c + 'A', c.slice(0, -1), c.slice(0, -1) + '+', c + '=', 'confirm:' + c.slice(6),
    'cpace:' + t.slice(8), 'hello', '', 'CPACE:' + c.slice(6), null, 42,
    // Non-canonical: the last character carries bits past the 32 bytes.
    c.slice(0, -1) + 'B',
  ]) {
    assert.equal(decodePakeMessage(bad), null, String(bad));
  }
  assert.throws(() => encodeCpace(range(31)));
  assert.throws(() => encodeConfirm(range(32)));
});

const FERRY = join(dirname(fileURLToPath(import.meta.url)), 'pake-ferry.json');
test('agrees with the Rust side (test/pake-ferry.json)', {
  skip: existsSync(FERRY) ? false : 'test/pake-ferry.json is absent: the Rust tests write it (src/signal/pake.rs)',
}, () => {
  const j = JSON.parse(readFileSync(FERRY, 'utf8'));
  const a = start(j.code, 'a', hex(j.ya));
  const b = start(j.code, 'b', hex(j.yb));
  assert.equal(toHex(a.message), j.Ya);
  assert.equal(toHex(b.message), j.Yb);
  const fa = a.finish(hex(j.Yb));
  const fb = b.finish(hex(j.Ya));
  for (const f of [fa, fb]) {
    assert.equal(toHex(f.isk), j.isk);
    assert.equal(toHex(f.key), j.key);
    assert.equal(f.roomId, j.room_id);
  }
  assert.equal(toHex(fa.myTag), j.ta);
  assert.equal(toHex(fb.myTag), j.tb);
  assert.ok(fa.checkPeerTag(hex(j.tb)) && fb.checkPeerTag(hex(j.ta)));
});
