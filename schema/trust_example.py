# An independent check of schema/TRUST.md's worked example: python3 schema/trust_example.py
import base64, hashlib, hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
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

def signing_key(identity):
    _, secret = bech32_data(identity)
    prk = hmac.new(b"recording-vault signing key v1", secret, hashlib.sha256).digest()
    seed = hmac.new(prk, b"ed25519 seed from an age x25519 identity" + b"\x01", hashlib.sha256).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)

identity = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
public_id = "vault1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73eygta72u600vlq3e2qn740pu6hqvjkr4drxxrhlrlzyhp7zff55lcdfghcv"
raw = signing_key(identity).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
hrp, data = bech32_data(public_id)
assert hrp == "vault" and len(data) == 64 and data[32:] == raw, "the public id carries the derived key"

root = ("vault-trust-root/v1\nvault: recording-vault/0123456789abcdef\n"
        "admin: alice " + public_id + "\n"
        "admin: bob vault1ehhas7p6jx6yveqw9c0e2kvakd0ysjsqwx7jrq4nkcxssykpp3cvdhemtw04le4egjgslmvj77w6h5ukqxtlfaymr36gxn5dah48g6qe5nrng\n")
print("fingerprint: SHA256:" + base64.b64encode(hashlib.sha256(root.encode()).digest()).decode().rstrip("="))

statement = ("vault-statement/v1\ntype: enrol\nvault: recording-vault/0123456789abcdef\nname: ivan\nrole: investigator\n"
             "id: vault1luhwg4spasdkwvgvw7gyq3v94e5hxv0wu8ql3neyr9e3c8ll8e44ytlr4qlda2x0kywfllpmmlyggfgheccc9tqqqt80g58qc640p9ce6wthy\n"
             "by: alice\nat: 2026-11-29T10:00:00.000Z\n")
sig = base64.b64decode("N9ZFcYeY4Cxyiw36zzhF1nGw7WdWCiiNEh5KXP5t3yWEITP0i8QBFsW4B5pu8KygI8hpiPQwZtXbwfr67micBA==")
Ed25519PublicKey.from_public_bytes(data[32:]).verify(sig, statement.encode())
print("alice's signature verifies")
