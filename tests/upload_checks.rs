//! Uploads no one could decrypt are refused. The server cannot decrypt, but it checks
//! that an upload is exactly as long as its sender announced (`x-vault-upload-length`)
//! and that this length can be a whole age file. Here a recorder with a valid token plays
//! a broken or hostile recorder: every forged upload is refused with a message saying
//! what is wrong, logged as a refusal, and leaves nothing on disk or in the database;
//! `vault-cli upload` still round-trips at the chunk edges.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use vault_tests::{Person, Vault, files_under};

/// Plaintext bytes per chunk of an age payload, and the sizes around each chunk.
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const NONCE: usize = 16;
const HEADER: &str = "x-vault-upload-length";

/// A vault with a customer case, a recorder (pbx) and an investigator with a grant (bob).
struct World {
    v: Vault,
    pbx: Person,
    bob: Person,
    case: String,
    token: String,
}

fn world() -> World {
    let v = Vault::start();
    let alice = v.admin.clone();
    let pbx = v.enrol("pbx", "recorder");
    let bob = v.enrol("bob", "investigator");
    let case = v
        .cli(&alice, &["case", "create", "--kind", "customer", "--title", "Uploads", "--purpose", "complaint-handling"])
        .ok();
    assert!(case.starts_with("case_"), "{case}");
    v.cli(&alice, &["grant", &case, "bob", "--reason", "checks"]).ok();
    v.cli(&pbx, &["login"]).ok();
    let token = v.token(&pbx);
    World { v, pbx, bob, case, token }
}

impl World {
    /// Uploads `content` with `vault-cli upload`; returns the recording id and the
    /// ciphertext the server stored.
    fn upload(&self, name: &str, content: &[u8]) -> (String, Vec<u8>) {
        let file = self.v.dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let rec =
            self.v.cli(&self.pbx, &["upload", &self.case, file.to_str().unwrap(), "--announced", "signal-tone"]).ok();
        assert!(rec.starts_with("rec_"), "{rec}");
        let stored = std::fs::read(self.v.data().join("blobs").join(format!("{rec}.age"))).unwrap();
        (rec, stored)
    }

    /// Fetches `rec` as bob and returns its plaintext.
    fn fetch(&self, rec: &str) -> Vec<u8> {
        let out = self.v.dir.path().join(format!("{rec}.out"));
        self.v.cli(&self.bob, &["fetch", rec, "--reason", "checks", "--out", out.to_str().unwrap()]).ok();
        std::fs::read(out).unwrap()
    }

    fn recordings(&self) -> i64 {
        self.v.count("SELECT count(*) FROM recordings")
    }

    /// POSTs `body` to the case as pbx with `headers`, framed with a Content-Length
    /// (`content_length`, or the body's own) or, with `chunked`, as one chunk of a chunked
    /// body. The server may answer before it has read the whole body, so a failed write is
    /// not an error here: the answer is what counts.
    fn post(&self, headers: &[(&str, &str)], body: &[u8], framing: Framing) -> (u16, String) {
        let addr = self.v.url.trim_start_matches("http://");
        let path = format!("/v1/cases/{}/recordings?announced=signal-tone", self.case);
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n",
            self.token
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let mut payload = Vec::new();
        match framing {
            Framing::Length(n) => req.push_str(&format!("Content-Length: {}\r\n", n.unwrap_or(body.len()))),
            Framing::Chunked => {
                req.push_str("Transfer-Encoding: chunked\r\n");
                payload.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            }
        }
        req.push_str("\r\n");
        payload.extend_from_slice(body);
        if matches!(framing, Framing::Chunked) {
            payload.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(req.as_bytes()).and_then(|()| s.write_all(&payload));
        vault_tests::read_answer(&mut s)
    }

    /// Asserts that an upload was refused with `status` and a message with `needle`, that
    /// the refusal is the newest access-log entry, and that it left no recording, blob or
    /// temporary file.
    #[track_caller]
    fn refused(&self, what: &str, (status, body): (u16, String), expected: u16, needle: &str, recordings: i64) {
        assert_eq!(status, expected, "{what}: {body}");
        assert!(body.contains(needle), "{what}: the answer lacks {needle:?}: {body}");
        let (actor, action, outcome, _, details) = self.v.last_log();
        assert_eq!(
            (actor.as_str(), action.as_str(), outcome.as_str()),
            ("pbx", "upload", "refused"),
            "{what}: {details}"
        );
        assert_eq!(self.recordings(), recordings, "{what}: a recording row was added");
        let blobs = files_under(&self.v.data().join("blobs")).len() as i64;
        assert_eq!(blobs, recordings, "{what}: a blob was left behind");
        let tmp = files_under(&self.v.data().join("tmp"));
        assert!(tmp.is_empty(), "{what}: left in tmp/: {tmp:?}");
    }
}

#[derive(Clone, Copy)]
enum Framing {
    /// A Content-Length: the given one, or the body's length.
    Length(Option<usize>),
    Chunked,
}

/// The length of the age header at the start of `ct`, through its `---` line.
fn header_len(ct: &[u8]) -> usize {
    let mac = ct.windows(5).position(|w| w == b"\n--- ").expect("a MAC line") + 1;
    mac + ct[mac..].iter().position(|&b| b == b'\n').expect("the end of the MAC line") + 1
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn fail_uploads_no_one_could_decrypt_are_refused_logged_and_leave_nothing() {
    let w = world();
    // Real ciphertext to forge from: one full chunk and one of 5 bytes, and a short file.
    let (_, two) = w.upload("two.wav", &data(CHUNK + 5));
    let (_, short) = w.upload("short.wav", &data(100));
    let h = header_len(&two);
    let full_chunk = h + NONCE + CHUNK + TAG;
    assert_eq!(two.len(), full_chunk + 5 + TAG, "not the layout this test forges from");
    let recordings = w.recordings();
    let announce = |n: usize| n.to_string();

    // Lengths no age file has, each announced as sent.
    let impossible: [(&str, &[u8], &str); 5] = [
        ("the header alone", &two[..h], "payload nonce"),
        ("the header and the nonce", &two[..h + NONCE], "without the chunk"),
        ("15 bytes after the nonce", &two[..h + NONCE + 15], "shorter than the 16-byte tag"),
        ("a tag alone after a full chunk", &two[..full_chunk + TAG], "an empty last chunk"),
        ("15 bytes after a full chunk", &two[..full_chunk + 15], "shorter than the 16-byte tag"),
    ];
    for (what, body, why) in impossible {
        let answer = w.post(&[(HEADER, &announce(body.len()))], body, Framing::Length(None));
        w.refused(what, answer, 400, why, recordings);
        let answer = w.post(&[(HEADER, &announce(body.len()))], body, Framing::Chunked);
        w.refused(what, answer, 400, "no one could ever decrypt this upload", recordings);
    }

    // Cut at a chunk boundary: a length an age file can have, but not the one announced.
    let answer = w.post(&[(HEADER, &announce(two.len()))], &two[..full_chunk], Framing::Chunked);
    w.refused("cut at a chunk boundary", answer, 400, &format!("ended after {full_chunk} of the"), recordings);
    // Longer than announced.
    let answer = w.post(&[(HEADER, &announce(full_chunk))], &two, Framing::Chunked);
    w.refused("longer than announced", answer, 400, "longer than the", recordings);

    // A Content-Length shorter than the body: it must say what the announcement says ...
    let hs = header_len(&short);
    let cut = hs + NONCE + 20;
    let answer = w.post(&[(HEADER, &announce(short.len()))], &short, Framing::Length(Some(cut)));
    w.refused("a Content-Length shorter than announced", answer, 400, "differs from", recordings);
    // ... and where both say the shorter length, that length is checked like any other.
    let cut = hs + NONCE + 15;
    let answer = w.post(&[(HEADER, &announce(cut))], &short, Framing::Length(Some(cut)));
    w.refused("a Content-Length cutting the last tag", answer, 400, "shorter than the 16-byte tag", recordings);

    // No announcement, or one that is not a length.
    let must = "must announce its length in x-vault-upload-length; use vault-cli of the same version";
    let answer = w.post(&[], &short, Framing::Length(None));
    w.refused("no announced length", answer, 400, must, recordings);
    for bad in ["", "-1", "+132", "12abc", "1e6", "0x10", "18446744073709551616"] {
        let answer = w.post(&[(HEADER, bad)], &short, Framing::Chunked);
        w.refused(&format!("announced length {bad:?}"), answer, 400, must, recordings);
    }
    let twice = [(HEADER, announce(short.len())), (HEADER, announce(short.len()))];
    let twice: Vec<(&str, &str)> = twice.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = w.post(&twice, &short, Framing::Length(None));
    w.refused("two announced lengths", answer, 400, must, recordings);
    // More than the server takes: refused before the body is read.
    let answer = w.post(&[(HEADER, &announce(1 << 60))], &short, Framing::Chunked);
    w.refused("an announced length over the limit", answer, 413, "larger than this server accepts", recordings);
    // Garbage is still told it is not age, announced or not.
    let answer = w.post(&[], b"RIFF\x00\x00WAVEfmt plain audio", Framing::Length(None));
    w.refused("not age", answer, 400, "not age ciphertext", recordings);

    // The same bytes, whole and announced as sent, are taken: the refusals above were
    // the forgeries', not the way they were sent.
    for framing in [Framing::Length(None), Framing::Chunked] {
        let (status, body) = w.post(&[(HEADER, &announce(two.len()))], &two, framing);
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(w.recordings(), recordings + 2);
    assert!(files_under(&w.v.data().join("tmp")).is_empty());
}

#[test]
fn vault_cli_uploads_round_trip_at_the_chunk_edges() {
    let w = world();
    for n in [0, CHUNK, CHUNK + 1] {
        let content = data(n);
        let (rec, stored) = w.upload(&format!("edge-{n}.wav"), &content);
        let chunks = n.div_ceil(CHUNK).max(1);
        assert_eq!(stored.len(), header_len(&stored) + NONCE + n + chunks * TAG, "{n} bytes");
        assert!(w.fetch(&rec) == content, "{n} bytes: the fetched plaintext differs");
        // The upload's log entry records the size the recorder announced and sent.
        let details: String = w
            .v
            .db()
            .query_row("SELECT details FROM access_log WHERE action = 'upload' AND recording_id = ?1", [&rec], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(details.contains(&format!("\"size\":{}", stored.len())), "{n} bytes: {details}");
    }
}
