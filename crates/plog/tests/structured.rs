//! Structured records (kind 1): written, read back as data, shown as text and JSON; and the
//! compatibility rule for kinds a build does not know (docs/plog-format.md, "Versions").
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use plog::{Field, FollowOptions, Level, LogOptions, RecordKind, StructuredPayload, Value};

fn log(dir: &tempfile::TempDir) -> plog::Log {
    LogOptions::new()
        .blocks(64)
        .block_size(128)
        .open(dir.path().join("s.plog"))
        .unwrap()
}

#[test]
fn structured_records_come_back_as_data_and_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(&dir);
    let mut payload = StructuredPayload::new();
    payload
        .message("slow query")
        .field("retries", 3u64)
        .field("user", "bob")
        .span("request")
        .field("id", 7i64)
        .span("db");
    let id = log.write_structured(Level::Warn, "db", &payload).unwrap();
    let record = log.reader().next().unwrap();
    assert_eq!((record.id, record.kind), (id, RecordKind::Structured));
    assert_eq!(record.message(), "slow query");
    assert_eq!(
        record.fields().collect::<Vec<_>>(),
        [
            Field {
                name: "retries",
                value: Value::U64(3)
            },
            Field {
                name: "user",
                value: Value::Str("bob")
            },
        ]
    );
    let spans: Vec<_> = record
        .spans()
        .map(|s| (s.name, s.fields().count()))
        .collect();
    assert_eq!(spans, [("request", 1), ("db", 0)]);

    let text = record.to_text_line();
    assert!(
        text.ends_with(&format!(
            "id={id} request{{id=7}}:db: slow query retries=3 user=bob\n"
        )),
        "{text}"
    );
    let json = record.to_json_line();
    assert!(
        json.ends_with(
            r#""message":"slow query","fields":{"retries":3,"user":"bob"},"spans":[{"name":"request","id":7},{"name":"db"}]}
"#
        ),
        "{json}"
    );
}

#[test]
fn a_plain_record_has_no_fields_and_its_lines_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(&dir);
    log.write(Level::Info, "t", "a=b").unwrap();
    let record = log.reader().next().unwrap();
    assert_eq!(record.kind, RecordKind::Plain);
    assert_eq!((record.fields().count(), record.spans().count()), (0, 0));
    assert!(record.to_json_line().ends_with(
        r#""message":"a=b"}
"#
    ));
}

#[test]
fn a_record_of_a_kind_this_build_does_not_know_is_skipped_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(&dir);
    log.write(Level::Info, "t", "before").unwrap();
    plog::testing::write_kind(&log, Level::Info, 9, "t", b"from a later format").unwrap();
    log.write(Level::Info, "t", "after").unwrap();

    let mut reader = log.reader();
    let messages: Vec<_> = reader.by_ref().map(|r| r.message().into_owned()).collect();
    assert_eq!(messages, ["before", "after"]);
    assert_eq!((reader.lost(), reader.unknown_kinds()), (0, 1));

    // A follower steps over it at once: a hole would cost it the (here endless) grace.
    let mut follower = log
        .follow(
            FollowOptions::new()
                .from_start()
                .hole_grace(Duration::from_secs(3600)),
        )
        .unwrap();
    let first = follower.next_timeout(Duration::from_secs(5)).unwrap();
    let second = follower.next_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (first.message(), second.message()),
        ("before".into(), "after".into())
    );
    assert_eq!(follower.lost(), 0);
}

#[test]
fn a_structured_record_whose_payload_does_not_decode_reads_as_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(&dir);
    plog::testing::write_kind(&log, Level::Info, 1, "t", b"\x07not items").unwrap();
    let record = log.reader().next().unwrap();
    assert!(record.structured().is_none());
    assert_eq!(record.message(), "\u{7}not items");
    assert_eq!(record.fields().count(), 0);
}
