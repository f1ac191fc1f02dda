//! The README's table of bad inputs ("Bad input and the message it gets") is checked here, row
//! by row: each input gets exactly the message the table shows, and every message meets
//! DESIGN §1 (short, printable, no long echo of the input, no key material).
//!
//! In the table's input column, `«x×N»` stands for `x` repeated N times (a 120 KB input does
//! not fit in a README), and `FILE` for a path to a regular file.

mod common;
#[path = "common/messages.rs"]
mod messages;

use callrec::{Engine, EngineConfig, RecordOptions};

/// `(where, input, message)` rows between the README's bad-inputs markers.
fn rows() -> Vec<(String, String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- bad-inputs:start -->")
        .expect("start marker");
    let end = readme.find("<!-- bad-inputs:end -->").expect("end marker");
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| where") && !l.starts_with("|---"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "a row of three cells: {l}");
            let code = |c: &str| c.trim_matches('`').to_owned();
            (cells[0].to_owned(), code(cells[1]), code(cells[2]))
        })
        .collect()
}

/// Expands `«x×N»` into N copies of x.
fn expand(input: &str) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(at) = rest.find('«') {
        out.push_str(&rest[..at]);
        let end = rest.find('»').expect("closing »");
        let (piece, times) = rest[at + '«'.len_utf8()..end]
            .rsplit_once('×')
            .expect("x×N");
        out.push_str(&piece.repeat(times.parse().expect("N")));
        rest = &rest[end + '»'.len_utf8()..];
    }
    out + rest
}

fn message(place: &str, input: &str, dir: &std::path::Path) -> String {
    match place {
        "options" => match RecordOptions::from_json(input) {
            Ok(_) => "(accepted)".into(),
            Err(e) => e.to_string(),
        },
        "config" => match EngineConfig::from_json(input) {
            Ok(_) => "(accepted)".into(),
            Err(e) => e.to_string(),
        },
        "store" => {
            let file = dir.join("a-file");
            std::fs::write(&file, b"x").unwrap();
            let root = input.replace("FILE", file.to_str().unwrap());
            match Engine::new(&root, EngineConfig::default()) {
                Ok(_) => "(accepted)".into(),
                Err(e) => e.to_string().replace(file.to_str().unwrap(), "FILE"),
            }
        }
        other => panic!("unknown place {other}"),
    }
}

#[test]
fn every_bad_input_in_the_readme_gets_its_message() {
    let dir = common::store("bad-inputs");
    std::fs::create_dir_all(&dir).unwrap();
    let rows = rows();
    assert!(rows.len() >= 15, "the table has its rows");
    let mut wrong = Vec::new();
    for (place, input, want) in &rows {
        let input = expand(input);
        let got = message(place, &input, &dir);
        if std::env::var_os("CALLREC_PRINT_BAD_INPUTS").is_some() {
            println!(
                "| {place} | `{}` | `{got}` |",
                &input[..input.len().min(120)]
            );
        }
        if got != "(accepted)" {
            messages::check(&got, &input);
        }
        // Key material never appears, whatever the input.
        assert!(!got.contains("603deb"), "key material in {got:?}");
        if &got != want {
            wrong.push(format!(
                "{place} {input:.80}:\n  README: {want}\n  actual: {got}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
