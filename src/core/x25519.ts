/**
 * X25519 (RFC 7748) behind one interface with two implementations: WebCrypto ("native": Chrome ≥ 133,
 * Firefox ≥ 130, Node ≥ 20; several times faster) and @noble/curves (the fallback and the reference).
 * Both produce the same bytes; the tests run every vector through both.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { decodeBase64 } from './base64.ts';
import { equalBytes, expectBytes, isAllZero, toBufferSource } from './bytes.ts';
import { CoreError } from './errors.ts';

export type X25519Implementation = 'native' | 'noble';

/**
 * A peer's public key prepared once for many agreements: the upload path agrees every fresh
 * ephemeral key with the same backup public key, and for WebCrypto importing it is a call of its own.
 */
export interface X25519PublicKey {
  readonly bytes: Uint8Array;
  /** The imported key, for the native implementation only. */
  readonly cryptoKey?: CryptoKey;
}

/** A private key imported once, usable for many key agreements. Holds no printable secret. */
export interface X25519Secret {
  readonly implementation: X25519Implementation;
  readonly publicKey: Uint8Array;
  /** X25519(this, peer); refuses the all-zero result with kind `non-contributory`. */
  sharedSecret(peer: Uint8Array | X25519PublicKey): Promise<Uint8Array>;
}

const ALGORITHM = { name: 'X25519' } as const;

// WebCrypto cannot import a raw X25519 private key, only PKCS#8 (RFC 8410): this is the fixed
// 16-byte DER prefix for a 32-byte key — SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.110 },
// OCTET STRING { OCTET STRING (32) } }.
const PKCS8_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20];

function pkcs8(privateKey: Uint8Array): Uint8Array<ArrayBuffer> {
  const der = new Uint8Array(PKCS8_PREFIX.length + 32);
  der.set(PKCS8_PREFIX, 0);
  der.set(privateKey, PKCS8_PREFIX.length);
  return der;
}

function nonContributory(cause?: unknown): CoreError {
  return new CoreError(
    'non-contributory',
    'the X25519 key agreement produced the all-zero secret: the public key is a low-order point',
    { cause },
  );
}

/**
 * Reference §2.4 step 2: refuse the all-zero shared secret (vodozemac: NonContributoryKey). Both
 * implementations already throw for low-order points; this guards a platform that does not.
 */
function contributory(shared: Uint8Array): Uint8Array {
  if (isAllZero(shared)) throw nonContributory();
  return shared;
}

// RFC 7748 §6.1: Alice's private key with Bob's public key gives K.
const hex = (s: string): Uint8Array<ArrayBuffer> => Uint8Array.from(s.match(/../g)!, (b) => parseInt(b, 16));
const RFC7748_ALICE_PRIVATE = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
const RFC7748_BOB_PUBLIC = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
const RFC7748_SHARED = hex('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');

let nativeProbe: Promise<boolean> | undefined;

/**
 * Whether this platform's WebCrypto does X25519 correctly. Probed once per process with the
 * RFC 7748 known answer: browsers that lack the algorithm throw, which here simply means "no".
 */
export function hasNativeX25519(): Promise<boolean> {
  nativeProbe ??= (async () => {
    try {
      const secret = await importNative(RFC7748_ALICE_PRIVATE);
      return equalBytes(await secret.sharedSecret(RFC7748_BOB_PUBLIC), RFC7748_SHARED);
    } catch {
      return false; // NotSupportedError and friends: fall back to @noble/curves
    }
  })();
  return nativeProbe;
}

/** The implementation to use: the one asked for, else native when the platform has it. */
export async function chooseX25519(requested?: X25519Implementation): Promise<X25519Implementation> {
  if (requested === 'noble') return 'noble';
  const native = await hasNativeX25519();
  if (requested === 'native' && !native) {
    throw new CoreError('algorithm', 'this platform has no native X25519 in WebCrypto; use the noble implementation');
  }
  if (requested !== undefined && requested !== 'native') {
    throw new CoreError('algorithm', `unknown X25519 implementation ${JSON.stringify(requested)}`);
  }
  return native ? 'native' : 'noble';
}

function publicKeyBytes(peer: Uint8Array | X25519PublicKey): Uint8Array {
  return expectBytes(peer instanceof Uint8Array ? peer : peer.bytes, 'X25519 public key', 32);
}

function importNativePublic(publicKey: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', toBufferSource(publicKey), ALGORITHM, false, []);
}

/** Prepares a peer public key for many agreements (imported once for the native implementation). */
export async function importX25519PublicKey(publicKey: Uint8Array, implementation: X25519Implementation): Promise<X25519PublicKey> {
  const bytes = publicKeyBytes(publicKey).slice();
  if (implementation === 'noble') return { bytes };
  return { bytes, cryptoKey: await importNativePublic(bytes) };
}

/** Key agreement with a WebCrypto private key. */
function nativeSecret(key: CryptoKey, publicKey: Uint8Array): X25519Secret {
  return {
    implementation: 'native',
    publicKey,
    async sharedSecret(peer) {
      const peerKey = peer instanceof Uint8Array || peer.cryptoKey === undefined
        ? await importNativePublic(publicKeyBytes(peer))
        : peer.cryptoKey;
      let shared: ArrayBuffer;
      try {
        shared = await crypto.subtle.deriveBits({ name: 'X25519', public: peerKey }, key, 256);
      } catch (cause) {
        // WebCrypto: "If secret is the all-zero value, then throw an OperationError" — the only
        // way deriveBits fails for a well-formed 32-byte key.
        throw nonContributory(cause);
      }
      return contributory(new Uint8Array(shared));
    },
  };
}

async function importNative(privateKey: Uint8Array): Promise<X25519Secret> {
  const der = pkcs8(privateKey);
  try {
    // Imported twice: once extractable, only to read the public half from the JWK (WebCrypto has
    // no "public key of" operation), and once non-extractable for the agreements themselves.
    const exportable = await crypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['deriveBits']);
    const jwk = await crypto.subtle.exportKey('jwk', exportable);
    const publicKey = decodeBase64((jwk.x ?? '').replace(/-/g, '+').replace(/_/g, '/'), 'JWK public key');
    const key = await crypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['deriveBits']);
    return nativeSecret(key, publicKey);
  } finally {
    der.fill(0); // the CryptoKey holds the secret now; leave no copy in the heap
  }
}

function importNoble(privateKey: Uint8Array): X25519Secret {
  const secret = privateKey.slice();
  return {
    implementation: 'noble',
    publicKey: x25519.getPublicKey(secret),
    async sharedSecret(peer) {
      const peerPublicKey = publicKeyBytes(peer);
      let shared: Uint8Array;
      try {
        shared = x25519.getSharedSecret(secret, peerPublicKey);
      } catch (cause) {
        // noble refuses the low-order points up front (they would give the all-zero secret);
        // lengths were checked above, so that is the only failure left.
        throw nonContributory(cause);
      }
      return contributory(shared);
    },
  };
}

/**
 * Imports a 32-byte private key, as generated (unclamped: X25519 clamps internally, and clamping
 * here would change the recovery key the user sees — reference §0).
 */
export async function importX25519Secret(privateKey: Uint8Array, implementation: X25519Implementation): Promise<X25519Secret> {
  expectBytes(privateKey, 'X25519 private key', 32);
  return implementation === 'native' ? importNative(privateKey) : importNoble(privateKey);
}

/** A fresh key pair for one encryption (reference §2.4 step 2). */
export async function generateX25519Secret(implementation: X25519Implementation): Promise<X25519Secret> {
  if (implementation === 'noble') return importNoble(randomBytes(32));
  const pair = (await crypto.subtle.generateKey(ALGORITHM, false, ['deriveBits'])) as CryptoKeyPair;
  return nativeSecret(pair.privateKey, new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey)));
}
