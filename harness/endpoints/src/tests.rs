use super::*;

const TIERS: [TierId; 2] = [TierId::SharedEc2, TierId::SiloEc2];

fn tenants() -> Vec<String> {
    vec!["tenant-01".into(), "tenant-02".into()]
}

fn parse(src: &str) -> Result<Endpoints, EndpointsError> {
    let t = tenants();
    Endpoints::parse(src, Path::new("e.toml"), Needs { scenario_tiers: &TIERS, run_tiers: &TIERS, tenants: &t })
}

fn problems(src: &str) -> Vec<Problem> {
    parse(src).unwrap_err().problems
}

const GOOD: &str = r#"format_version = 1
[tiers.shared-ec2]
"*" = "http://127.0.0.1:18080"
[tiers.silo-ec2]
tenant-01 = "http://127.0.0.1:18081"
tenant-02 = "http://localhost:18082/"
"#;

#[test]
fn good_file_resolves_every_tenant() {
    let e = parse(GOOD).unwrap();
    let shared = &e.tiers[&TierId::SharedEc2];
    assert_eq!(shared.len(), 2);
    assert!(shared.iter().all(|u| u.addr == "127.0.0.1:18080".parse().unwrap()));
    let silo = &e.tiers[&TierId::SiloEc2];
    assert_eq!(silo[0].addr.port(), 18081);
    assert_eq!(silo[1].authority, "localhost:18082");
    assert!(silo[1].addr.ip().is_loopback());
}

#[test]
fn a_subset_of_tiers_needs_only_its_urls() {
    let t = tenants();
    let src = "format_version = 1\n[tiers.shared-ec2]\n\"*\" = \"http://127.0.0.1:1\"\n";
    let needs = Needs { scenario_tiers: &TIERS, run_tiers: &[TierId::SharedEc2], tenants: &t };
    assert!(Endpoints::parse(src, Path::new("e.toml"), needs).is_ok());
    let p = problems(src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].message.contains("no `[tiers.silo-ec2]` table"), "{p:?}");
}

#[test]
fn problems_are_located_and_say_what_is_accepted() {
    let cases: &[(&str, usize, &str)] = &[
        (&GOOD.replace("format_version = 1", "format_version = 2"), 1, "format version 2"),
        (&GOOD.replace("[tiers.silo-ec2]", "[tiers.silo-ec3]"), 4, "unknown tier `silo-ec3`"),
        (&GOOD.replace("[tiers.silo-ec2]", "[tiers.lambda-shared]"), 4, "not in the scenario"),
        (&GOOD.replace("tenant-02 = ", "tenant-09 = "), 6, "no tenant `tenant-09`"),
        (&GOOD.replace("tenant-02 = \"http://localhost:18082/\"\n", ""), 4, "no URL for tenant `tenant-02`"),
        (&GOOD.replace("http://127.0.0.1:18081", "https://127.0.0.1:18081"), 5, "https is not supported"),
        (&GOOD.replace("http://127.0.0.1:18081", "http://127.0.0.1:18081/api"), 5, "a path"),
        (&GOOD.replace("http://127.0.0.1:18081", "127.0.0.1:18081"), 5, "not a URL"),
        (&GOOD.replace("http://127.0.0.1:18081", "ftp://127.0.0.1:18081"), 5, "scheme `ftp`"),
        (&GOOD.replace("http://127.0.0.1:18081", "http://no-such-host.invalid:1"), 5, "cannot resolve host"),
        (&GOOD.replace("[tiers.shared-ec2]", "colour = 1\n[tiers.shared-ec2]"), 2, "unknown field `colour`"),
    ];
    for (src, line, needle) in cases {
        // Renaming a tier also leaves the run's tier without a table: a second problem.
        let p = problems(src);
        assert!(p.iter().any(|p| p.line == Some(*line) && p.message.contains(needle)), "{needle}: {p:?}");
        assert!(p.len() <= 2, "{needle}: {p:?}");
    }
    let e = parse(&GOOD.replace("[tiers.silo-ec2]", "[tiers.silo-ec3]")).unwrap_err().to_string();
    assert!(e.starts_with("invalid endpoints file e.toml (2 problems)\n  e.toml:4:1: unknown tier"), "{e}");
    assert!(e.contains("accepted: `silo-ec2`"), "{e}");
}

#[test]
fn deploy_names_the_url_that_does_not_answer() {
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let src = format!("format_version = 1\n[tiers.shared-ec2]\n\"*\" = \"http://127.0.0.1:{port}\"\n");
    let t = tenants();
    let needs = Needs { scenario_tiers: &[TierId::SharedEc2], run_tiers: &[TierId::SharedEc2], tenants: &t };
    let e = Endpoints::parse(&src, Path::new("e.toml"), needs).unwrap();
    let mut b = EndpointsBackend::new(e);
    let plan = TierPlan {
        run_id: "r".into(),
        tier: TierId::SharedEc2,
        name: "shared-ec2".into(),
        settings: isobench_core::scenario::TierSettings::Ec2(isobench_core::scenario::Ec2Spec::new(
            TierId::SharedEc2,
            isobench_core::instance_types::lookup("m5.large").unwrap(),
        )),
        tenants: vec![],
        workload: Default::default(),
        subnet: isobench_core::scenario::LOCAL_RANGE,
        seed: 1,
        faults: vec![],
        lambda_account_concurrency: isobench_core::scenario::lambda::DEFAULT_ACCOUNT_CONCURRENCY,
    };
    let err = b.deploy(&plan).unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains(&format!("http://127.0.0.1:{port}")), "{text}");
    assert!(text.contains("connect"), "{text}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}
