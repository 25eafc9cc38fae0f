//! A streaming writer of the Chrome JSON trace-event format (the one Perfetto and
//! chrome://tracing load): `{"traceEvents": [...]}` written one event at a time, so a trace
//! never exists in memory as a whole.
//!
//! Times are written in microseconds with exactly three decimals, from integer nanoseconds
//! (`1234.567`), so no floating-point rounding changes a slice's duration.

use serde_json::{Map, Value};
use std::io::{self, Write};

/// Integer nanoseconds as microseconds with three decimals (`-0.250` for −250 ns).
pub fn micros(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// Writes trace events into one JSON object.
pub struct TraceWriter<W: Write> {
    out: W,
    first: bool,
    /// Events written so far.
    pub events: u64,
}

impl<W: Write> TraceWriter<W> {
    /// Opens the object and its `traceEvents` array.
    pub fn new(mut out: W) -> io::Result<TraceWriter<W>> {
        writeln!(out, "{{\"displayTimeUnit\":\"ns\",\"traceEvents\":[")?;
        Ok(TraceWriter {
            out,
            first: true,
            events: 0,
        })
    }

    fn sep(&mut self) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        self.events += 1;
        Ok(())
    }

    fn args(args: &Map<String, Value>) -> String {
        Value::Object(args.clone()).to_string()
    }

    /// A metadata event (`ph` `M`): `process_name`, `thread_name`, `process_sort_index`...
    pub fn metadata(
        &mut self,
        name: &str,
        pid: u64,
        tid: Option<u64>,
        args: Value,
    ) -> io::Result<()> {
        self.sep()?;
        let tid = tid.map_or(String::new(), |t| format!(",\"tid\":{t}"));
        write!(
            self.out,
            "{{\"ph\":\"M\",\"name\":{},\"pid\":{pid}{tid},\"args\":{args}}}",
            Value::from(name)
        )
    }

    /// A complete slice (`ph` `X`) from `ts_ns` lasting `dur_ns`.
    #[allow(clippy::too_many_arguments)]
    pub fn slice(
        &mut self,
        name: &str,
        cat: &str,
        pid: u64,
        tid: u64,
        ts_ns: i64,
        dur_ns: i64,
        args: &Map<String, Value>,
    ) -> io::Result<()> {
        self.sep()?;
        write!(
            self.out,
            "{{\"ph\":\"X\",\"name\":{},\"cat\":{},\"pid\":{pid},\"tid\":{tid},\"ts\":{},\"dur\":{},\"args\":{}}}",
            Value::from(name),
            Value::from(cat),
            micros(ts_ns),
            micros(dur_ns),
            Self::args(args)
        )
    }

    /// An instant event (`ph` `i`) on one thread's track.
    pub fn instant(
        &mut self,
        name: &str,
        cat: &str,
        pid: u64,
        tid: u64,
        ts_ns: i64,
        args: &Map<String, Value>,
    ) -> io::Result<()> {
        self.sep()?;
        write!(
            self.out,
            "{{\"ph\":\"i\",\"s\":\"t\",\"name\":{},\"cat\":{},\"pid\":{pid},\"tid\":{tid},\"ts\":{},\"args\":{}}}",
            Value::from(name),
            Value::from(cat),
            micros(ts_ns),
            Self::args(args)
        )
    }

    /// A counter event (`ph` `C`): each argument is one series of the counter track `name`.
    pub fn counter(
        &mut self,
        name: &str,
        pid: u64,
        ts_ns: i64,
        args: &Map<String, Value>,
    ) -> io::Result<()> {
        self.sep()?;
        write!(
            self.out,
            "{{\"ph\":\"C\",\"name\":{},\"pid\":{pid},\"tid\":0,\"ts\":{},\"args\":{}}}",
            Value::from(name),
            micros(ts_ns),
            Self::args(args)
        )
    }

    /// Closes the array and the object, with `otherData` (free-form facts about the trace).
    pub fn finish(mut self, other: Value) -> io::Result<W> {
        write!(self.out, "\n],\"otherData\":{other}}}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_are_exact_to_the_nanosecond() {
        assert_eq!(micros(0), "0.000");
        assert_eq!(micros(1), "0.001");
        assert_eq!(micros(1_234_567), "1234.567");
        assert_eq!(micros(-250), "-0.250");
    }

    #[test]
    fn the_output_is_one_json_object() {
        let mut w = TraceWriter::new(Vec::new()).unwrap();
        let mut a = Map::new();
        a.insert("dt_ns".into(), 1500.into());
        w.metadata(
            "process_name",
            1,
            None,
            serde_json::json!({"name": "a \"b\""}),
        )
        .unwrap();
        w.slice("x→y", "stage", 1, 2, 1000, 1500, &a).unwrap();
        w.instant("retransmit", "tcp", 1, 0, 3000, &Map::new())
            .unwrap();
        w.counter("cwnd", 1, 4000, &a).unwrap();
        let bytes = w.finish(serde_json::json!({})).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let evs = v["traceEvents"].as_array().unwrap();
        assert_eq!(evs.len(), 4);
        assert_eq!(evs[1]["dur"].as_f64(), Some(1.5));
        assert_eq!(evs[0]["args"]["name"], "a \"b\"");
    }
}
