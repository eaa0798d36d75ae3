//! Printing results: JSON for scripts, aligned columns for people, and [`printable`] for
//! every piece of text someone else wrote (a reason, a title, a file name, the server's
//! own messages) before it reaches a terminal.

use std::borrow::Cow;

use serde::Serialize;

/// `s` with every character that could steer a terminal or hide or reorder text shown as
/// a visible escape: `\t`, `\n`, `\r`, and `\u{..}` for the rest. Text written by other
/// people (or sent by a server that may lie) goes through here before it is printed, so a
/// reason holding `\r` and `ESC[2K` cannot overprint its own access-log line with a fake
/// one. Ordinary text, accents and other scripts included, comes back borrowed as it was.
///
/// Escaped: the C0 controls, DEL and the C1 controls (Unicode category Cc); the bidi
/// controls (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069); the invisible
/// formatting characters around them (U+200B to U+200D, U+2060 to U+2065, U+206A to
/// U+206F, U+FEFF, U+FFF9 to U+FFFB and the tag characters U+E0000 to U+E007F); and the
/// line and paragraph separators U+2028 and U+2029. A backslash is left alone: an escape
/// reads the same as those characters typed as text, and `--json` tells them apart.
pub fn printable(s: &str) -> Cow<'_, str> {
    let Some(first) = s.find(needs_escape) else { return Cow::Borrowed(s) };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Prints `value` as JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows as left-aligned columns under a header. Every cell goes through
/// [`printable`], so a cell cannot break the table or the terminal.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    for line in table_lines(header, rows) {
        println!("{line}");
    }
}

fn table_lines(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let rows: Vec<Vec<Cow<'_, str>>> = rows.iter().map(|r| r.iter().map(|c| printable(c)).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        s.join("  ").trim_end().to_owned()
    };
    std::iter::once(line(header.to_vec()))
        .chain(rows.iter().map(|r| line(r.iter().map(|c| c.as_ref()).collect())))
        .collect()
}

/// Refuses an `--out` that exists already, and returns the folder to stage it in (a
/// temporary file beside it is renamed onto it only when complete).
pub fn new_output(out: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    if out.exists() {
        anyhow::bail!("{} exists already; choose another --out or remove it", out.display());
    }
    Ok(match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    })
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress(len: Option<u64>, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::no_length(),
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_owned());
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_comes_back_borrowed_and_unchanged() {
        for s in ["", "complaint 17", "Klacht van mevr. Eşref, café Zoë", "中文标题", "naïve 🙂 — a\\b \"q\" 'x'"]
        {
            assert!(matches!(printable(s), Cow::Borrowed(b) if b == s), "{s:?}");
        }
    }

    #[test]
    fn a_reason_cannot_overprint_its_line() {
        let reason = "review\r\x1b[2K42  2026-01-01 00:00:00  alice  fetch  allowed\n\tnext";
        assert_eq!(printable(reason), "review\\r\\u{1b}[2K42  2026-01-01 00:00:00  alice  fetch  allowed\\n\\tnext");
        assert_eq!(printable("a\0b\x7fc\u{9b}d"), "a\\u{0}b\\u{7f}c\\u{9b}d");
    }

    #[test]
    fn bidi_and_invisible_characters_are_shown() {
        assert_eq!(printable("invoice\u{202E}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(printable("a\u{200B}b\u{2066}c\u{2069}\u{FEFF}"), "a\\u{200b}b\\u{2066}c\\u{2069}\\u{feff}");
        assert_eq!(printable("x\u{E0041}\u{2028}y"), "x\\u{e0041}\\u{2028}y");
    }

    #[test]
    fn no_escaped_text_holds_a_character_that_needs_escaping() {
        // Every char, alone and after ordinary text: the result is made of characters
        // that need no escape, and it is unchanged exactly when none was needed.
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let s = format!("é{c}");
            let p = printable(&s);
            assert!(!p.chars().any(|c| c.is_control() || needs_escape(c)), "{s:?} became {p:?}");
            assert_eq!(matches!(p, Cow::Borrowed(_)), !needs_escape(c), "{c:?}");
            assert!(p.starts_with('é'));
        }
    }

    #[test]
    fn table_cells_are_escaped_and_aligned_as_shown() {
        let rows = vec![
            vec!["1".to_owned(), "ok\r\x1b[2Kfake".to_owned(), "x".to_owned()],
            vec!["2".to_owned(), "café".to_owned(), "y".to_owned()],
        ];
        assert_eq!(
            table_lines(&["SEQ", "REASON", "Z"], &rows),
            ["SEQ  REASON             Z", "1    ok\\r\\u{1b}[2Kfake  x", "2    café               y"]
        );
    }

    #[test]
    fn every_c0_c1_and_del_is_escaped() {
        for c in (0..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(needs_escape(c), "{c:?}");
        }
    }
}
