//! tracefs `events/*/*/format` files (capture/tracefs.rs): the classic
//! tracepoint path reads `oom:mark_victim`'s layout from them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace::capture::tracefs::{EventFormat, Field};

/// A field as its format line writes it.
fn line(field: &Field) -> String {
    format!(
        "\tfield:{} {};\toffset:{};\tsize:{};\tsigned:{};",
        field.c_type,
        field.name,
        field.offset,
        field.size,
        u8::from(field.signed)
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(format) = EventFormat::parse(text) else {
        return;
    };
    assert!(!format.fields.is_empty(), "Some(format) without fields");
    for field in &format.fields {
        // A name is one C identifier; the type is what precedes it.
        assert!(!field.name.is_empty());
        assert!(
            field
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "name {:?} is not an identifier",
            field.name
        );
        assert_eq!(field.c_type, field.c_type.trim());
        assert_eq!(field.is_data_loc(), field.c_type.starts_with("__data_loc"));
        // Lookup by name finds the first field of that name.
        let found = format.field(&field.name).expect("a parsed field is found");
        assert_eq!(found.name, field.name);
    }
    // Round trip: writing the parsed fields out as a format file and
    // parsing that gives the same layout.
    let mut written = String::from("name: fuzz\n");
    if let Some(id) = format.id {
        written.push_str(&format!("ID: {id}\n"));
    }
    written.push_str("format:\n");
    for field in &format.fields {
        written.push_str(&line(field));
        written.push('\n');
    }
    let again = EventFormat::parse(&written).expect("a written layout parses");
    assert_eq!(again, format, "round trip of\n{written}");
});
