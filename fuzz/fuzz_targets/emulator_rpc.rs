//! The emulator's RPC request reading (src/emulator/params.rs): parameters from the query string
//! and a form body, the signature check's input, and the `Timestamp` parser.
//!
//! Input: the query string, a newline, then the form body (no newline: no body).
//!
//! Properties: the first value of a name wins, the query before the body; whatever parameters
//! a client signs with the shared signer and sends as a query string or form body, the
//! emulator reads back exactly and verifies; an accepted `Timestamp` is exactly
//! `yyyy-MM-ddTHH:mm:ssZ`, i.e. formats back to itself.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vod_ingest::fuzzing::{emulator_rpc_params, emulator_rpc_timestamp};
use vod_ingest::sign::{constant_time_eq, rpc};

const SECRET: &str = "emulator-access-key-secret";

fn check_timestamp(value: &str) {
    if let Some(t) = emulator_rpc_timestamp(value) {
        assert_eq!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string(), value);
    }
}

fuzz_target!(|data: &[u8]| {
    let (query, form) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let params = emulator_rpc_params(query, form);
    let mut first = BTreeMap::new();
    for part in std::iter::once(query).chain(form) {
        for (k, v) in url::form_urlencoded::parse(part) {
            first.entry(k.into_owned()).or_insert(v.into_owned());
        }
    }
    assert_eq!(params, first);

    let mut signed = params.clone();
    rpc::sign_params("POST", &mut signed, SECRET);
    let wire = rpc::to_query_string(&signed);
    for read in [
        emulator_rpc_params(wire.as_bytes(), None),
        emulator_rpc_params(b"", Some(wire.as_bytes())),
    ] {
        assert_eq!(read, signed, "{wire}");
        let expected = rpc::signature(&rpc::string_to_sign("POST", &read), SECRET);
        assert!(constant_time_eq(
            expected.as_bytes(),
            read["Signature"].as_bytes()
        ));
    }

    if let Some(ts) = params.get("Timestamp") {
        check_timestamp(ts);
    }
    if let Ok(text) = std::str::from_utf8(query) {
        check_timestamp(text);
    }
});
