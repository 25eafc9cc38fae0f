//! `tcptape sql stages PATH`: the report's per stage pair breakdown as one SQL query for DuckDB
//! or Spark SQL, with PATH filled in. The query's body (`analyzer/sql/stages.sql`) is the same
//! text for both engines; only how the engine reads PATH differs.

use crate::exit_code;
use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The query's text, with `{{source}}` and `{{max_gap_ns}}` to fill in.
pub const STAGES_SQL: &str = include_str!("../sql/stages.sql");

/// Arguments of `tcptape sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query to print.
    #[command(subcommand)]
    pub query: SqlQuery,
}

/// The queries `tcptape sql` prints.
#[derive(Debug, Subcommand)]
pub enum SqlQuery {
    /// Per stage pair: `from`, `to`, `count`, `p50_ns`, `p90_ns`, `p99_ns`, `max_ns`, over every
    /// host of PATH pooled; the counts equal `tcptape report --format json` (`stages`, or
    /// `pooled.stages` for a set), the percentiles are exact (nearest rank).
    Stages(StagesArgs),
}

/// The engines the query is printed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// DuckDB (`duckdb -c "$(tcptape sql stages DIR)"`, or `duckdb.sql(...)` in Python).
    Duckdb,
    /// Spark SQL (`spark.sql(query)`; see the comment the query starts with).
    Spark,
}

/// Arguments of `tcptape sql stages`.
#[derive(Debug, Args)]
pub struct StagesArgs {
    /// A recording (a `.parquet` file or a directory of segments), or a recording set made by
    /// `tcptape-record --into DIR` (`DIR/host=NAME/...`: hosts are told apart by that directory);
    /// a URL (`s3://bucket/fleet`, `hdfs://…`) is taken as a set the engine reads.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The engine that will run the query.
    #[arg(long, value_enum, default_value_t = Engine::Duckdb)]
    pub engine: Engine,
    /// Two hops of one packet id further apart than this are taken as two packets, as in
    /// `tcptape report --max-hop-gap`.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub max_hop_gap: std::time::Duration,
}

/// How PATH is laid out, which decides how the engine reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// One recording file.
    File(PathBuf),
    /// One recording's directory of segments, or a directory of recordings of one host.
    OneHost(PathBuf),
    /// A recording set with `host=NAME` directories.
    Set(PathBuf),
}

fn layout(path: &Path) -> anyhow::Result<Layout> {
    // A set in object storage or HDFS (`s3://…`, `hdfs://…`): read by the engine, not here.
    if path.to_string_lossy().contains("://") {
        return Ok(Layout::Set(path.to_path_buf()));
    }
    let abs = std::fs::canonicalize(path)
        .with_context(|| format!("{}: no such recording or directory", path.display()))?;
    if !abs.is_dir() {
        // A file: read it as the analyzer would, so a foreign file is refused here.
        tcptape_common::Recording::open(&abs).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        return Ok(Layout::File(abs));
    }
    let recordings = crate::inputs::expand(&[abs.to_string_lossy().into_owned()])?;
    let in_host_dir = |p: &PathBuf| {
        p.strip_prefix(&abs).is_ok_and(|rel| {
            rel.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with("host="))
        })
    };
    if recordings.iter().any(in_host_dir) {
        return Ok(Layout::Set(abs));
    }
    let hosts = crate::inputs::open_by_host(&recordings)?;
    if hosts.len() > 1 {
        let names: Vec<&str> = hosts.iter().map(|(h, _)| h.as_str()).collect();
        bail!(
            "{}: recordings of {} hosts ({}) outside a host=NAME layout; the query tells hosts \
             apart by that directory: record with `tcptape-record --into DIR`, or move each \
             host's files under DIR/host=NAME/",
            path.display(),
            hosts.len(),
            names.join(", ")
        );
    }
    Ok(Layout::OneHost(abs))
}

/// The relation the query reads (`src`): every column of the recordings and `host`.
fn source(layout: &Layout, engine: Engine) -> anyhow::Result<String> {
    let path = match layout {
        Layout::File(p) | Layout::OneHost(p) | Layout::Set(p) => p.to_string_lossy().into_owned(),
    };
    Ok(match engine {
        Engine::Duckdb => {
            let quoted = path.replace('\'', "''");
            match layout {
                Layout::File(_) => format!("SELECT *, '' AS host FROM read_parquet('{quoted}')"),
                Layout::OneHost(_) => format!(
                    "SELECT *, '' AS host FROM read_parquet('{quoted}/**/*.parquet', \
                     union_by_name = true)"
                ),
                Layout::Set(_) => format!(
                    "SELECT * FROM read_parquet('{quoted}/**/*.parquet', hive_partitioning = true, \
                     union_by_name = true)"
                ),
            }
        }
        Engine::Spark => {
            if path.contains('`') {
                bail!("{path}: a path with a backtick cannot be named in Spark SQL");
            }
            match layout {
                Layout::File(_) | Layout::OneHost(_) => {
                    format!("SELECT *, '' AS host FROM parquet.`{path}`")
                }
                Layout::Set(_) => format!("SELECT * FROM parquet.`{path}`"),
            }
        }
    })
}

/// The stages query for `engine` over `path`.
pub fn stages_query(
    path: &Path,
    engine: Engine,
    max_hop_gap: std::time::Duration,
) -> anyhow::Result<String> {
    let layout = layout(path)?;
    let mut q = String::new();
    if engine == Engine::Spark {
        // Spark's constraint propagation grows with the query's many joins and windows: with it,
        // planning takes a 3 GB driver heap; without it, seconds and the default heap.
        q.push_str(
            "-- Spark: first spark.sql(\"SET spark.sql.constraintPropagation.enabled=false\"),\n\
             -- or plan with a driver heap of 4 GB (spark.driver.memory).\n",
        );
    }
    q.push_str(
        &STAGES_SQL
            .replace("{{source}}", &source(&layout, engine)?)
            .replace("{{max_gap_ns}}", &max_hop_gap.as_nanos().to_string()),
    );
    Ok(q)
}

/// Runs `tcptape sql`.
pub fn run(args: &SqlArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    match &args.query {
        SqlQuery::Stages(a) => {
            let q = stages_query(&a.path, a.engine, a.max_hop_gap)?;
            out.write_all(q.as_bytes())?;
        }
    }
    Ok(exit_code::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_has_no_placeholder_left_and_names_the_result_columns() {
        let q = STAGES_SQL
            .replace("{{source}}", "SELECT 1")
            .replace("{{max_gap_ns}}", "1");
        assert!(!q.contains("{{"), "a placeholder is left");
        for col in [
            "AS from",
            "AS to",
            "AS count",
            "AS p50_ns",
            "AS p90_ns",
            "AS p99_ns",
            "AS max_ns",
        ] {
            assert!(q.contains(col), "{col}");
        }
    }

    #[test]
    fn a_set_is_read_with_its_host_directories_and_a_file_as_one_host() {
        let dir = tempfile::tempdir().unwrap();
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/bulk-loss.parquet");
        let at = dir.path().join("host=a/date=2026-01-01");
        std::fs::create_dir_all(&at).unwrap();
        std::fs::copy(&sample, at.join("t.parquet")).unwrap();
        let set = layout(dir.path()).unwrap();
        assert!(matches!(set, Layout::Set(_)), "{set:?}");
        let duck = source(&set, Engine::Duckdb).unwrap();
        assert!(duck.contains("hive_partitioning = true"), "{duck}");
        let one = layout(&at).unwrap();
        assert!(matches!(one, Layout::OneHost(_)), "{one:?}");
        let spark = source(&Layout::File("/r/it's.parquet".into()), Engine::Spark).unwrap();
        assert_eq!(spark, "SELECT *, '' AS host FROM parquet.`/r/it's.parquet`");
        let duck = source(&Layout::File("/r/it's.parquet".into()), Engine::Duckdb).unwrap();
        assert!(duck.contains("'/r/it''s.parquet'"), "{duck}");
        assert!(source(&Layout::File("/r/a`b".into()), Engine::Spark).is_err());
    }

    #[test]
    fn a_url_is_a_set_the_engine_reads() {
        let l = layout(Path::new("s3://bucket/fleet")).unwrap();
        assert_eq!(l, Layout::Set("s3://bucket/fleet".into()));
        assert_eq!(
            source(&l, Engine::Spark).unwrap(),
            "SELECT * FROM parquet.`s3://bucket/fleet`"
        );
    }
}
