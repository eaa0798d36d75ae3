//! The payload of an age file (its STREAM of ChaCha20-Poly1305 chunks), with `ring`'s
//! AEAD instead of the `age` crate's.
//!
//! Why: encrypting and decrypting recordings is the vault's hottest loop. The `age` crate
//! (0.12.1, the newest) encrypts at about 1.4 GiB/s here; `ring`'s ChaCha20-Poly1305 runs
//! at about 2.5 GiB/s on the same machine (`cargo bench -p vault-core`), which is what
//! brought uploads within reach of the `age` tool on two shared cores.
//!
//! What stays with the `age` crate: everything but the chunk loop. It generates the file
//! key, wraps it to the recipient, writes and parses the header and checks its MAC. This
//! module only sees the file key, through [`CaptureKey`] / [`CaptureFileKey`] wrappers
//! around the real recipient and identity, and the 16-byte nonce that follows the header.
//! From those it derives the payload key exactly as the age specification says
//! (`HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload")`, via `age-core`'s own
//! `hkdf`) and runs STREAM: 64 KiB chunks, each sealed with a 12-byte nonce of an 11-byte
//! big-endian counter and a last-chunk flag byte; only the last chunk may be short, and
//! it may be empty only when the whole payload is.
//!
//! The output is ordinary age: the tests check it both ways against the `age` crate, and
//! the end-to-end tests decrypt uploads with the `age` tool.
//!
//! One thing `ring` does not do: wipe its copy of the payload key when the key is
//! dropped. The file key and the derived key bytes this module holds are in zeroizing
//! buffers; the plaintext buffers are zeroed after use.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{self, BufRead, Read, Write};

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::error::{CryptoError, decrypt_error};

/// Plaintext bytes per chunk.
const CHUNK: usize = 64 * 1024;
/// Poly1305 tag bytes per chunk.
const TAG: usize = 16;
/// Bytes of the nonce between the header and the first chunk.
const NONCE: usize = 16;
/// The longest header this module reads before giving up (a vault header is ~200 bytes).
const HEADER_MAX: u64 = 64 * 1024;

/// Encrypts `input` to `recipient` as an age file written to `output`; returns the
/// number of plaintext bytes.
pub fn encrypt<R: Read + ?Sized, W: Write>(
    recipient: &age::x25519::Recipient,
    input: &mut R,
    output: W,
) -> io::Result<u64> {
    Encryption::new(recipient)?.encrypt(input, output)
}

/// An encryption to one recipient whose header is already made: the length of the
/// ciphertext is known before any plaintext is read, so an uploader can announce it.
pub struct Encryption {
    /// The header and the payload nonce after it.
    head: Vec<u8>,
    stream: Stream,
}

impl Encryption {
    /// Makes the file key, the header that wraps it to `recipient`, and the payload nonce.
    pub fn new(recipient: &age::x25519::Recipient) -> io::Result<Self> {
        let capture = CaptureKey { inner: recipient, file_key: RefCell::new(None) };
        let encryptor = age::Encryptor::with_recipients(std::iter::once(&capture as &dyn age::Recipient))
            .map_err(io::Error::other)?;
        // The age crate writes the header and the payload nonce; its stream writer is
        // dropped before it writes anything else.
        let mut head = Vec::with_capacity(512);
        drop(encryptor.wrap_output(&mut head)?);
        let file_key = capture.file_key.into_inner().ok_or_else(|| io::Error::other("age did not wrap a file key"))?;
        let stream = Stream::new(&file_key, &head[head.len() - NONCE..]);
        Ok(Self { head, stream })
    }

    /// The length of the whole age file for `plaintext_len` bytes of plaintext.
    pub fn ciphertext_len(&self, plaintext_len: u64) -> u64 {
        (self.head.len() - NONCE) as u64 + payload_len(plaintext_len)
    }

    /// Encrypts everything `input` yields, writing the age file to `output` as it goes;
    /// returns the number of plaintext bytes.
    pub fn encrypt<R: Read + ?Sized, W: Write>(self, input: &mut R, mut output: W) -> io::Result<u64> {
        let Self { head, mut stream } = self;
        output.write_all(&head)?;

        // One chunk and one byte of look-ahead, read straight into the buffer that is sealed
        // in place: a chunk is the last one when nothing follows it.
        let mut buf = Zeroizing::new(vec![0u8; CHUNK + TAG]);
        let mut filled = 0;
        let mut total = 0u64;
        loop {
            filled += read_full(input, &mut buf[filled..CHUNK + 1])?;
            if filled <= CHUNK {
                total += filled as u64;
                let tag = stream.seal(&mut buf[..filled], true);
                buf[filled..filled + TAG].copy_from_slice(tag.as_ref());
                output.write_all(&buf[..filled + TAG])?;
                return Ok(total);
            }
            let next = buf[CHUNK];
            let tag = stream.seal(&mut buf[..CHUNK], false);
            buf[CHUNK..].copy_from_slice(tag.as_ref());
            output.write_all(&buf[..])?;
            total += CHUNK as u64;
            buf[0] = next;
            filled = 1;
        }
    }
}

/// The length of the payload (the nonce and the chunks after the header) that holds
/// `plaintext_len` bytes: every chunk adds a tag, and even an empty plaintext has one
/// (empty) chunk.
pub fn payload_len(plaintext_len: u64) -> u64 {
    let chunks = plaintext_len.div_ceil(CHUNK as u64).max(1);
    (NONCE as u64).saturating_add(plaintext_len).saturating_add(chunks.saturating_mul(TAG as u64))
}

/// Checks that `len` bytes after the header can be an age payload at all, whatever the
/// key: the 16-byte nonce, then chunks of 64 KiB of plaintext and a 16-byte tag, all full
/// but the last, which holds at least its tag and, after full chunks, some plaintext
/// (an empty last chunk is allowed only as the whole of an empty file). [`decrypt`]
/// refuses every other length. On refusal, says what is wrong.
///
/// The length decides the chunk layout, so a payload of a possible length may still be
/// cut at a chunk boundary: only the sender's announced length, or the key, tells that.
pub fn check_payload_len(len: u64) -> Result<(), &'static str> {
    let sealed = (CHUNK + TAG) as u64;
    let Some(chunks) = len.checked_sub(NONCE as u64) else {
        return Err("it ends before the 16-byte payload nonce that follows the age header");
    };
    if chunks == 0 {
        return Err("it ends right after the payload nonce, without the chunk every age file has");
    }
    match chunks % sealed {
        0 => Ok(()),
        last if last < TAG as u64 => {
            Err("its last chunk is shorter than the 16-byte tag that ends every chunk (it was cut short)")
        }
        last if last == TAG as u64 && chunks > sealed => {
            Err("its last chunk is only a tag after full chunks: an empty last chunk, which age refuses")
        }
        _ => Ok(()),
    }
}

/// Decrypts the age file read from `input` with `identity`, writing the plaintext to
/// `output` as it goes; returns the number of plaintext bytes. On error `output` holds a
/// prefix of unauthenticated plaintext: write into a temporary file and throw it away.
pub fn decrypt<R: Read, W: Write + ?Sized>(
    identity: &age::x25519::Identity,
    input: R,
    output: &mut W,
) -> Result<u64, CryptoError> {
    let mut input = io::BufReader::with_capacity(CHUNK + TAG + 1, input);
    let head = read_header_and_nonce(&mut input)?;
    // The age crate parses the header, finds this identity's stanza and checks the MAC.
    let decryptor = age::Decryptor::new_buffered(&head[..]).map_err(decrypt_error)?;
    if decryptor.is_scrypt() {
        return Err(CryptoError::Malformed("passphrase-encrypted files are not used by the vault".into()));
    }
    let capture = CaptureFileKey { inner: identity, file_key: RefCell::new(None) };
    drop(decryptor.decrypt(std::iter::once(&capture as &dyn age::Identity)).map_err(decrypt_error)?);
    let file_key = capture.file_key.into_inner().ok_or(CryptoError::NotForThisIdentity)?;
    let mut stream = Stream::new(&file_key, &head[head.len() - NONCE..]);

    let mut buf = Zeroizing::new(vec![0u8; CHUNK + TAG + 1]);
    let mut filled = 0;
    let mut total = 0u64;
    loop {
        filled += read_full(&mut input, &mut buf[filled..]).map_err(CryptoError::Io)?;
        if filled <= CHUNK + TAG {
            if filled < TAG {
                return Err(CryptoError::Malformed("the age file is truncated".into()));
            }
            let plain = stream.open(&mut buf[..filled], true)?;
            if plain.is_empty() && total > 0 {
                return Err(CryptoError::Malformed("the last chunk is empty; the age file was altered".into()));
            }
            output.write_all(plain)?;
            return Ok(total + plain.len() as u64);
        }
        let next = buf[CHUNK + TAG];
        let plain = stream.open(&mut buf[..CHUNK + TAG], false)?;
        output.write_all(plain)?;
        total += CHUNK as u64;
        buf[0] = next;
        filled = 1;
    }
}

/// The STREAM state of one payload.
struct Stream {
    key: LessSafeKey,
    counter: u128,
    done: bool,
}

impl Stream {
    fn new(file_key: &[u8; 16], nonce: &[u8]) -> Self {
        let key = Zeroizing::new(age_core::primitives::hkdf(nonce, b"payload", file_key));
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key[..]).expect("a 32-byte key"));
        Self { key, counter: 0, done: false }
    }

    /// The nonce of the next chunk: 11 bytes of big-endian counter, then the last flag.
    fn next_nonce(&mut self, last: bool) -> Nonce {
        assert!(!self.done, "no chunk follows the last one");
        let mut n = [0u8; 12];
        n[..11].copy_from_slice(&self.counter.to_be_bytes()[16 - 11..]);
        n[11] = u8::from(last);
        self.counter += 1;
        self.done = last;
        Nonce::assume_unique_for_key(n)
    }

    fn seal(&mut self, chunk: &mut [u8], last: bool) -> ring::aead::Tag {
        let nonce = self.next_nonce(last);
        self.key
            .seal_in_place_separate_tag(nonce, Aad::empty(), chunk)
            .expect("a 64 KiB chunk is far below ChaCha20's limit")
    }

    fn open<'b>(&mut self, chunk: &'b mut [u8], last: bool) -> Result<&'b mut [u8], CryptoError> {
        let nonce = self.next_nonce(last);
        self.key.open_in_place(nonce, Aad::empty(), chunk).map_err(|_| {
            CryptoError::Malformed(if last {
                "the last chunk does not authenticate (the age file was truncated or altered)".into()
            } else {
                "a chunk does not authenticate (the age file was altered)".into()
            })
        })
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read + ?Sized>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the header, through its `---` MAC line, into `head`; at most [`HEADER_MAX`]
/// bytes. Only the line structure is checked here; the `age` crate parses the rest.
pub(crate) fn read_header<R: BufRead>(input: &mut R, head: &mut Vec<u8>) -> Result<(), CryptoError> {
    let mut limited = input.take(HEADER_MAX);
    loop {
        let start = head.len();
        if limited.read_until(b'\n', head)? == 0 || !head.ends_with(b"\n") {
            return Err(CryptoError::Malformed("no complete age header".into()));
        }
        if head[start..].starts_with(b"--- ") {
            return Ok(());
        }
    }
}

/// The length of the header at the start of `buf`, through its `---` MAC line, as
/// [`decrypt`] reads it; `None` unless `buf` holds a complete one.
pub(crate) fn header_len(buf: &[u8]) -> Option<usize> {
    let mut head = Vec::new();
    read_header(&mut &buf[..], &mut head).ok().map(|()| head.len())
}

/// Reads the header (through its `---` MAC line) and the payload nonce after it.
fn read_header_and_nonce<R: BufRead>(input: &mut R) -> Result<Vec<u8>, CryptoError> {
    let mut head = Vec::with_capacity(512);
    read_header(input, &mut head)?;
    let start = head.len();
    head.resize(start + NONCE, 0);
    input
        .read_exact(&mut head[start..])
        .map_err(|_| CryptoError::Malformed("the age file ends after its header".into()))?;
    Ok(head)
}

/// A recipient that wraps through the real one and keeps a copy of the file key.
struct CaptureKey<'a> {
    inner: &'a age::x25519::Recipient,
    file_key: RefCell<Option<Zeroizing<[u8; 16]>>>,
}

impl age::Recipient for CaptureKey<'_> {
    fn wrap_file_key(&self, file_key: &FileKey) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        *self.file_key.borrow_mut() = Some(Zeroizing::new(*file_key.expose_secret()));
        self.inner.wrap_file_key(file_key)
    }
}

/// An identity that unwraps through the real one and keeps a copy of the file key.
struct CaptureFileKey<'a> {
    inner: &'a age::x25519::Identity,
    file_key: RefCell<Option<Zeroizing<[u8; 16]>>>,
}

impl CaptureFileKey<'_> {
    fn keep(&self, result: Option<Result<FileKey, age::DecryptError>>) -> Option<Result<FileKey, age::DecryptError>> {
        if let Some(Ok(file_key)) = &result {
            *self.file_key.borrow_mut() = Some(Zeroizing::new(*file_key.expose_secret()));
        }
        result
    }
}

impl age::Identity for CaptureFileKey<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.keep(self.inner.unwrap_stanza(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        self.keep(self.inner.unwrap_stanzas(stanzas))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Sizes at and around the chunk boundaries, where STREAM implementations go wrong.
    const EDGES: [usize; 9] = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1, 3 * CHUNK];

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn ours_encrypt(id: &age::x25519::Identity, plain: &[u8]) -> Vec<u8> {
        let mut ct = Vec::new();
        encrypt(&id.to_public(), &mut &plain[..], &mut ct).unwrap();
        ct
    }

    fn ours_decrypt(id: &age::x25519::Identity, ct: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::new();
        decrypt(id, ct, &mut out).map(|n| {
            assert_eq!(n, out.len() as u64);
            out
        })
    }

    /// The `age` crate's own encryption, as the reference.
    fn age_encrypt(id: &age::x25519::Identity, plain: &[u8]) -> Vec<u8> {
        let r = id.to_public();
        let e = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let mut ct = Vec::new();
        let mut w = e.wrap_output(&mut ct).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap();
        ct
    }

    /// The `age` crate's own decryption, as the reference.
    fn age_decrypt(id: &age::x25519::Identity, ct: &[u8]) -> Option<Vec<u8>> {
        let d = age::Decryptor::new_buffered(ct).ok()?;
        let mut r = d.decrypt(std::iter::once(id as &dyn age::Identity)).ok()?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// The length of what follows the header (headers vary: the age crate adds a random
    /// "grease" stanza).
    fn payload_of(ct: &[u8]) -> usize {
        let mac = ct.windows(4).position(|w| w == b"--- ").unwrap();
        ct.len() - (mac + ct[mac..].iter().position(|&b| b == b'\n').unwrap() + 1)
    }

    /// A chunk's plaintext and its last flag.
    type ForgedChunk<'a> = (&'a [u8], bool);

    /// An age file whose payload is the given chunks, each sealed with the given last
    /// flag: for payloads no honest encryptor writes.
    fn forged(id: &age::x25519::Identity, chunks: &[ForgedChunk]) -> Vec<u8> {
        let r = id.to_public();
        let capture = CaptureKey { inner: &r, file_key: RefCell::new(None) };
        let e = age::Encryptor::with_recipients(std::iter::once(&capture as &dyn age::Recipient)).unwrap();
        let mut out = Vec::new();
        drop(e.wrap_output(&mut out).unwrap());
        let mut stream = Stream::new(&capture.file_key.into_inner().unwrap(), &out[out.len() - NONCE..]);
        for (chunk, last) in chunks {
            let mut c = chunk.to_vec();
            stream.done = false; // allow chunks after a last one, to forge them
            let tag = stream.seal(&mut c, *last);
            out.extend_from_slice(&c);
            out.extend_from_slice(tag.as_ref());
        }
        out
    }

    #[test]
    fn agrees_with_the_age_crate_at_every_chunk_edge() {
        let id = age::x25519::Identity::generate();
        for n in EDGES {
            let plain = data(n);
            let ours = ours_encrypt(&id, &plain);
            assert_eq!(age_decrypt(&id, &ours).as_deref(), Some(&plain[..]), "age decrypts ours, {n} bytes");
            // The same payload layout as the age crate's: nonce, then 16 bytes per chunk.
            let theirs = age_encrypt(&id, &plain);
            assert_eq!(payload_of(&ours), payload_of(&theirs), "{n} bytes");
            assert_eq!(payload_of(&ours), NONCE + n + TAG * n.div_ceil(CHUNK).max(1), "{n} bytes");
            // The length rule the server checks uploads with accepts the age crate's output.
            assert_eq!(theirs.len() - header_len(&theirs).unwrap(), payload_of(&theirs), "{n} bytes");
            assert_eq!(payload_len(n as u64), payload_of(&theirs) as u64, "{n} bytes");
            assert_eq!(check_payload_len(payload_of(&theirs) as u64), Ok(()), "{n} bytes");
            assert_eq!(ours_decrypt(&id, &theirs).unwrap(), plain, "we decrypt age's, {n} bytes");
        }
    }

    #[test]
    fn fail_truncated_at_a_chunk_boundary_or_extended() {
        let id = age::x25519::Identity::generate();
        let ct = ours_encrypt(&id, &data(2 * CHUNK + 5));
        let header_and_nonce = ct.len() - (2 * CHUNK + 5) - 3 * TAG;
        for cut in [header_and_nonce, header_and_nonce + CHUNK + TAG, header_and_nonce + 2 * (CHUNK + TAG)] {
            assert!(matches!(ours_decrypt(&id, &ct[..cut]), Err(CryptoError::Malformed(_))), "cut at {cut}");
            assert!(age_decrypt(&id, &ct[..cut]).is_none());
        }
        let mut longer = ct.clone();
        longer.push(0);
        assert!(matches!(ours_decrypt(&id, &longer), Err(CryptoError::Malformed(_))));
        assert!(age_decrypt(&id, &longer).is_none());
    }

    #[test]
    fn fail_forged_streams_the_age_crate_also_refuses() {
        let id = age::x25519::Identity::generate();
        let full = data(CHUNK);
        let cases: [(&str, Vec<ForgedChunk>); 5] = [
            ("an empty last chunk after a full one", vec![(&full, false), (&[], true)]),
            ("a short chunk before the last", vec![(&full[..10], false), (&full[..10], true)]),
            ("a chunk after the last", vec![(&full, true), (&full[..10], true)]),
            ("no last chunk", vec![(&full, false), (&full, false)]),
            ("a full chunk not marked last at the end", vec![(&full, false)]),
        ];
        for (what, chunks) in cases {
            let ct = forged(&id, &chunks);
            assert!(age_decrypt(&id, &ct).is_none(), "the age crate accepts {what}");
            assert!(matches!(ours_decrypt(&id, &ct), Err(CryptoError::Malformed(_))), "{what}");
        }
        // And the forger itself is sound: honest flags decrypt.
        let ct = forged(&id, &[(&full, false), (&full[..3], true)]);
        assert_eq!(ours_decrypt(&id, &ct).unwrap().len(), CHUNK + 3);
    }

    #[test]
    fn fail_wrong_identity_header_mac_and_scrypt() {
        let id = age::x25519::Identity::generate();
        let ct = ours_encrypt(&id, b"call");
        let other = age::x25519::Identity::generate();
        assert!(matches!(ours_decrypt(&other, &ct), Err(CryptoError::NotForThisIdentity)));
        // A changed header: the MAC no longer matches.
        let mut bad = ct.clone();
        let pos = bad.windows(3).position(|w| w == b"-> ").unwrap() + 3;
        bad[pos] ^= 0x20;
        assert!(ours_decrypt(&id, &bad).is_err());
        let mac = bad.windows(4).position(|w| w == b"--- ").unwrap() + 4;
        let mut bad = ct.clone();
        bad[mac] = if bad[mac] == b'A' { b'B' } else { b'A' };
        assert!(matches!(ours_decrypt(&id, &bad), Err(CryptoError::Malformed(_))));
        // A passphrase file is refused before any passphrase work.
        let e = age::Encryptor::with_user_passphrase(age::secrecy::SecretString::from("pw".to_owned()));
        let mut pw = Vec::new();
        let mut w = e.wrap_output(&mut pw).unwrap();
        w.write_all(b"x").unwrap();
        w.finish().unwrap();
        assert!(matches!(ours_decrypt(&id, &pw), Err(CryptoError::Malformed(_))));
        // No header at all, or a header without the nonce.
        assert!(matches!(ours_decrypt(&id, b"age-encryption.org/v1\n"), Err(CryptoError::Malformed(_))));
        let header_end = ct.windows(4).position(|w| w == b"--- ").unwrap();
        let nl = header_end + ct[header_end..].iter().position(|&b| b == b'\n').unwrap() + 1;
        assert!(matches!(ours_decrypt(&id, &ct[..nl + 8]), Err(CryptoError::Malformed(_))));
    }

    /// Whether some plaintext has a payload of `len` bytes, by search: `payload_len`
    /// grows with the plaintext, so this is independent of the rule under test.
    fn some_plaintext_has_payload_len(len: u64) -> bool {
        let (mut lo, mut hi) = (0u64, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if payload_len(mid) < len { lo = mid + 1 } else { hi = mid }
        }
        payload_len(lo) == len
    }

    #[test]
    fn payload_lengths_around_the_first_chunks() {
        let sealed = (CHUNK + TAG) as u64;
        let (nonce, tag) = (NONCE as u64, TAG as u64);
        let refused = |len: u64, why: &str| {
            let err = check_payload_len(len).expect_err(&format!("{len} bytes accepted"));
            assert!(err.contains(why), "{len} bytes: {err}");
        };
        for len in 0..nonce {
            refused(len, "before the 16-byte payload nonce");
        }
        refused(nonce, "without the chunk");
        for len in nonce + 1..nonce + tag {
            refused(len, "shorter than the 16-byte tag");
        }
        // An empty file: one chunk that is only a tag.
        check_payload_len(nonce + tag).unwrap();
        check_payload_len(nonce + tag + 1).unwrap();
        for k in 1..4 {
            check_payload_len(nonce + k * sealed).unwrap();
            for d in 1..tag {
                refused(nonce + k * sealed + d, "shorter than the 16-byte tag");
            }
            refused(nonce + k * sealed + tag, "an empty last chunk");
            check_payload_len(nonce + k * sealed + tag + 1).unwrap();
        }
        for n in EDGES {
            assert_eq!(check_payload_len(payload_len(n as u64)), Ok(()), "{n} bytes of plaintext");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn every_real_payload_length_is_possible(n in 0usize..300_000) {
            let id = age::x25519::Identity::generate();
            let encryption = Encryption::new(&id.to_public()).unwrap();
            let announced = encryption.ciphertext_len(n as u64);
            let mut ct = Vec::new();
            encryption.encrypt(&mut &data(n)[..], &mut ct).unwrap();
            prop_assert_eq!(announced, ct.len() as u64);
            let header = header_len(&ct).unwrap();
            prop_assert_eq!(payload_len(n as u64), (ct.len() - header) as u64);
            prop_assert_eq!(check_payload_len((ct.len() - header) as u64), Ok(()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn lengths_near_chunk_boundaries_are_judged_correctly(k in 0u64..1 << 30, d in -16i64..=16) {
            let boundary = NONCE as u64 + k * (CHUNK + TAG) as u64;
            let Some(len) = boundary.checked_add_signed(d) else { return Ok(()) };
            // After k full chunks: exactly at the boundary (k > 0), or a last chunk of
            // more than a tag after it, or (below it) a last chunk of nearly full size.
            let expected = match d {
                0 => k > 0,
                1..=15 => false,
                16 => k == 0,
                _ => k > 0,
            };
            prop_assert_eq!(check_payload_len(len).is_ok(), expected, "{} bytes", len);
            prop_assert_eq!(some_plaintext_has_payload_len(len), expected, "{} bytes", len);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn agrees_with_the_age_crate(n in 0usize..300_000, flip in any::<prop::sample::Index>()) {
            let id = age::x25519::Identity::generate();
            let plain = data(n);
            let ct = ours_encrypt(&id, &plain);
            prop_assert_eq!(age_decrypt(&id, &ct), Some(plain.clone()));
            prop_assert_eq!(ours_decrypt(&id, &age_encrypt(&id, &plain)).unwrap(), plain);
            // One flipped bit anywhere: both refuse.
            let mut bad = ct.clone();
            let i = flip.index(bad.len());
            bad[i] ^= 1;
            prop_assert!(age_decrypt(&id, &bad).is_none());
            prop_assert!(ours_decrypt(&id, &bad).is_err());
        }
    }
}
