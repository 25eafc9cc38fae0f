//! Any key-value pairs as recording metadata: parsing must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, Option<String>)> = text
        .split('\n')
        .map(|line| match line.split_once('=') {
            Some((k, v)) => (format!("tcptape.{k}"), Some(v.to_string())),
            None => (line.to_string(), None),
        })
        .collect();
    let _ = tcptape_common::RecordingMeta::from_key_values(pairs.iter().map(|(k, v)| (k.as_str(), v.as_deref())));
});
