//! Property tests of the endpoints file parser: arbitrary text, generated files, and a valid
//! file under arbitrary mutations. It never panics, and every problem is located by line and
//! column, as `EndpointsError` promises. Hosts are IP literals or `localhost` only, so no case
//! waits on DNS.

use std::path::Path;

use isobench_core::tier::TierId;
use isobench_endpoints::{Endpoints, EndpointsError, Needs};
use isobench_testkit::mutate::mutated;
use proptest::prelude::*;

const TIERS: &[TierId] = &[TierId::SharedEc2, TierId::SiloEc2];

const VALID: &str = r#"format_version = 1
[tiers.shared-ec2]
"*" = "http://127.0.0.1:8080"
[tiers.silo-ec2]
tenant-01 = "http://10.0.2.11:8080"
tenant-02 = "http://[::1]"
"#;

fn tenants() -> Vec<String> {
    vec!["tenant-01".into(), "tenant-02".into()]
}

fn parse(src: &str) -> Result<Endpoints, EndpointsError> {
    let tenants = tenants();
    let needs = Needs { scenario_tiers: TIERS, run_tiers: TIERS, tenants: &tenants };
    Endpoints::parse(src, Path::new("e.toml"), needs)
}

fn check(src: &str) {
    match parse(src) {
        Ok(e) => {
            for t in TIERS {
                assert_eq!(e.tiers[t].len(), 2, "{t}: a URL per tenant");
            }
        }
        Err(e) => {
            let lines = src.lines().count() + 1;
            assert!(!e.problems.is_empty());
            for p in &e.problems {
                let (Some(line), Some(_)) = (p.line, p.column) else { panic!("not located: {p:?}\nin:\n{src}") };
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {p:?}");
            }
            assert!(e.to_string().starts_with("invalid endpoints file e.toml"), "{e}");
        }
    }
}

/// URLs that stay off DNS: IP literals, `localhost`, or text no URL parser takes as a host.
fn url() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(&["http://", "https://", "ftp://", "", "http:/", "HTTP://"][..]);
    let host = prop::sample::select(
        &["127.0.0.1", "10.0.2.11", "[::1]", "localhost", "", "user@127.0.0.1", "a b", "%zz", "[::1", "0.0.0.0"][..],
    );
    let port = prop_oneof![Just(String::new()), "[0-9]{0,7}".prop_map(|p| format!(":{p}")), Just(":x".to_string())];
    let path = prop::sample::select(&["", "/", "/x", "?q=1", "#f", "/ "][..]);
    (scheme, host, port, path).prop_map(|(s, h, p, q)| format!("{s}{h}{p}{q}"))
}

fn file() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(&["\"*\"", "tenant-01", "tenant-02", "tenant-03", "\"\""][..]).prop_map(str::to_string),
        "[a-z0-9-]{1,8}",
    ];
    let table = prop_oneof![
        prop::sample::select(&["shared-ec2", "silo-ec2", "lambda-shared", "shard-ec2", "\"\""][..])
            .prop_map(str::to_string),
        "[a-z-]{1,10}",
    ];
    let entries = prop::collection::vec((key, url()), 0..4);
    let tables = prop::collection::vec((table, entries), 0..4);
    let version = prop::sample::select(&["1", "2", "0", "-1", "\"1\"", "99999999999"][..]);
    (version, tables).prop_map(|(v, tables)| {
        let mut s = format!("format_version = {v}\n");
        for (t, entries) in tables {
            s.push_str(&format!("[tiers.{t}]\n"));
            for (k, u) in entries {
                s.push_str(&format!("{k} = \"{u}\"\n"));
            }
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_and_is_located(src in "\\PC{0,160}") {
        check(&src);
    }

    #[test]
    fn generated_files_never_panic_and_are_located(src in file()) {
        check(&src);
    }

    #[test]
    fn mutated_files_never_panic_and_are_located(src in mutated(VALID)) {
        // A mutation may write a new host name; only the files whose hosts stay off DNS run.
        prop_assume!(src.lines().filter(|l| l.contains("://")).all(|l| l.contains("127.0.0.1") || l.contains("10.0.2.11") || l.contains("[::1]")));
        check(&src);
    }
}

#[test]
fn the_seed_is_valid() {
    parse(VALID).unwrap_or_else(|e| panic!("{e}"));
}
