//! The README's schema table is the schema: same columns, order, types and nullability.

use arrow_schema::DataType;
use tcptape_common::schema::COLUMNS;

fn arrow_name(t: &DataType) -> &'static str {
    match t {
        DataType::UInt8 => "uint8",
        DataType::UInt16 => "uint16",
        DataType::UInt32 => "uint32",
        DataType::UInt64 => "uint64",
        DataType::Int32 => "int32",
        DataType::Utf8 => "string",
        other => panic!("no documented name for {other}"),
    }
}

#[test]
fn readme_schema_table_matches_the_code() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let table = readme
        .split("<!-- schema:begin -->")
        .nth(1)
        .and_then(|s| s.split("<!-- schema:end -->").next())
        .expect("README.md has a schema table between schema:begin/end markers");
    let rows: Vec<Vec<String>> = table
        .trim()
        .lines()
        .skip(2)
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), COLUMNS.len(), "one row per column");
    for (row, (name, ty, nullable, _)) in rows.iter().zip(COLUMNS) {
        assert_eq!(row[0], *name);
        assert_eq!(row[1], arrow_name(ty), "type of {name}");
        assert_eq!(
            row[4],
            if *nullable { "yes" } else { "no" },
            "nullability of {name}"
        );
    }
}
