# An independent check of schema/WITNESS.md's worked example: python3 schema/witness_example.py
# Recomputes the witness key from the identity, the Merkle roots and consistency proof, the
# log's signed checkpoints, the signed message and both cosignature lines, byte for byte
# (Ed25519 signatures are deterministic), with Python's hashlib/hmac and the `cryptography`
# package's Ed25519.
import base64, hashlib, hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

def bech32_data(s):
    hrp, data = s.lower().rsplit("1", 1)
    values = [CHARSET.index(c) for c in data][:-6]  # drop the checksum (not checked here)
    acc = bits = 0
    out = []
    for v in values:
        acc = (acc << 5) | v; bits += 5
        while bits >= 8:
            bits -= 8; out.append((acc >> bits) & 0xFF)
    return hrp, bytes(out)

def raw_public(key):
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

def witness_key(identity, name):
    _, secret = bech32_data(identity)
    prk = hmac.new(b"recording-vault witness key v1", secret, hashlib.sha256).digest()
    seed = hmac.new(prk, b"ed25519 cosigner seed for " + name.encode() + b"\x01", hashlib.sha256).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)

def key_hash(name, alg, public):
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]

b64 = lambda b: base64.b64encode(b).decode()
sha = lambda b: hashlib.sha256(b).digest()

# RFC 6962 trees of the leaves "entry 0" .. "entry 4".
leaf = lambda d: sha(b"\x00" + d)
node = lambda l, r: sha(b"\x01" + l + r)
def mth(hashes):
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node(mth(hashes[:k]), mth(hashes[k:]))
def subproof(m, hashes, whole):
    n = len(hashes)
    if m == n:
        return [] if whole else [mth(hashes)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return subproof(m, hashes[:k], whole) + [mth(hashes[k:])]
    return subproof(m - k, hashes[k:], False) + [mth(hashes[:k])]
leaves = [leaf(f"entry {i}".encode()) for i in range(5)]
root3, root5 = mth(leaves[:3]), mth(leaves)
proof = subproof(3, leaves, True)

origin = "recording-vault/0123456789abcdef"
log = Ed25519PrivateKey.from_private_bytes(bytes([0x4C]) * 32)
def signed_checkpoint(size, root):
    text = f"{origin}\n{size}\n{b64(root)}\n"
    sig = key_hash(origin, 0x01, raw_public(log)) + log.sign(text.encode())
    return text, f"{text}\n\u2014 {origin} {b64(sig)}\n"

name = "witness.example.org/dpo"
identity = "AGE-SECRET-KEY-12AT4W46H2AT4W46H2AT4W46H2AT4W46H2AT4W46H2AT4W46H2ATSJKDFZ8"
witness = witness_key(identity, name)
wpub = raw_public(witness)
def cosign(text, timestamp):
    message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
    sig = key_hash(name, 0x04, wpub) + timestamp.to_bytes(8, "big") + witness.sign(message)
    return f"\u2014 {name} {b64(sig)}\n"

text3, note3 = signed_checkpoint(3, root3)
text5, note5 = signed_checkpoint(5, root5)
print("log's verifier key: " + origin + "+" + key_hash(origin, 0x01, raw_public(log)).hex() + "+" + b64(b"\x01" + raw_public(log)))
print("witness's Ed25519 public key: " + wpub.hex())
print("witness's verifier key: " + name + "+" + key_hash(name, 0x04, wpub).hex() + "+" + b64(b"\x04" + wpub))
print("root of 3: " + b64(root3))
print("root of 5: " + b64(root5))
print("first cosignature: " + cosign(text3, 1795000000), end="")
print("second cosignature: " + cosign(text5, 1795000060), end="")
print("the second request:\nold 3\n" + "".join(b64(h) + "\n" for h in proof) + "\n" + note5, end="")

# Compare with the document.
import os, re
doc = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "WITNESS.md"), encoding="utf-8").read()
def value(label):
    return re.search("^" + re.escape(label) + " (.*)$", doc, re.M).group(1).strip()
assert value("witness's Ed25519 public key:") == wpub.hex()
assert value("root of 3:") == b64(root3) and value("root of 5:") == b64(root5)
assert value("first cosignature:") + "\n" == cosign(text3, 1795000000)
assert value("second cosignature:") + "\n" == cosign(text5, 1795000060)
assert "```\nold 3\n" + "".join(b64(h) + "\n" for h in proof) + "\n" + note5 + "```" in doc
assert "```\nold 0\n\n" + note3 + "```" in doc
print("WITNESS.md agrees")
