//! Reading and writing recordings: round trips, the reader's refusals, the hostile corpus, the
//! README's schema table; one test binary, so the build links the reader once.

mod anonymize_recording;
mod hostile_corpus;
mod reader_errors;
mod readme_schema;
mod round_trip;
