//! Tests of parsing and validating whole scenarios (the tiers' own are beside their parsers).

use std::path::Path;

use super::*;
use crate::arrivals::Shape;
use crate::tier::TierId;
use crate::workload_api::DEFAULT_PORT;

const GOOD: &str = r#"
format_version = 1
name = "t"

[run]
duration = "5s"
rate = "1k"

[tenants]
count = 3

[[tier]]
id = "silo-ec2"
instance_type = "t3.micro"

[[tier]]
id = "shared-ec2"
instance_type = "m5.large"
"#;

fn parse(s: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(s, Path::new("s.toml"))
}

fn ec2_network(s: &Scenario, tier: usize) -> &NetworkSpec {
    match &s.tiers[tier].settings {
        TierSettings::Ec2(e) => &e.network,
        other => panic!("{other:?}"),
    }
}

fn only_problem(s: &str) -> Problem {
    let e = parse(s).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    e.problems[0].clone()
}

#[test]
fn arrivals_zipf_phases_and_bursts_parse_and_bad_ones_are_located() {
    let zipf = format!("{GOOD}\n[arrivals]\ntenants = \"zipf\"\nzipf_s = 1.0\n");
    let s = parse(&zipf).unwrap();
    let w: Vec<f64> = s.tenants.iter().map(|t| t.weight).collect();
    assert_eq!(w, vec![1.0, 0.5, 1.0 / 3.0]);
    let shaped = format!(
        "{GOOD}\n[arrivals]\n[[arrivals.phases]]\nduration = \"5s\"\nfrom = 0.1\nto = 1.0\n\
         [arrivals.burst]\nperiod = \"10s\"\nlength = \"1s\"\nmultiplier = 3\n"
    );
    assert!(matches!(parse(&shaped).unwrap().shape(), Shape::Cycle { .. }));
    let p = only_problem(&format!("{GOOD}\n[[arrivals.phases]]\nduration = \"5s\"\nlevel = 1\nfrom = 0.5\n"));
    assert_eq!(p.field, "arrivals.phases[0]");
    assert_eq!(p.line, Some(20));
    let p = only_problem(&format!("{GOOD}\n[arrivals.burst]\nperiod = \"1s\"\nlength = \"2s\"\nmultiplier = 3\n"));
    assert_eq!(p.field, "arrivals.burst.length");
    let p = only_problem(
        &GOOD
            .replace("count = 3", "count = 3\nweights = [1, 2, 3]")
            .replace("[[tier]]\nid = \"silo-ec2\"", "[arrivals]\ntenants = \"zipf\"\n\n[[tier]]\nid = \"silo-ec2\""),
    );
    assert_eq!(p.field, "arrivals.tenants");
}

#[test]
fn trace_is_read_relative_to_the_scenario_and_bad_rows_are_located() {
    let dir = std::env::temp_dir().join(format!("isobench-scn-trace-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    let csv = "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,4,5\no,a,g,http,1,x\n";
    std::fs::write(dir.join("traces/t.csv"), csv).unwrap();
    let text = format!("{GOOD}\n[arrivals.trace]\nfile = \"traces/t.csv\"\nminute = \"1s\"\n");
    let e = Scenario::parse(&text, &dir.join("s.toml")).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!(e.problems[0].field, "arrivals.trace.file");
    assert!(e.problems[0].message.contains("t.csv:3: column 6 (minute 2)"), "{e}");
    std::fs::write(dir.join("traces/t.csv"), csv.replace(",x", ",0")).unwrap();
    let s = Scenario::parse(&text, &dir.join("s.toml")).unwrap();
    match s.shape() {
        Shape::Trace { per_tenant, minute } => {
            assert_eq!(minute, std::time::Duration::from_secs(1));
            assert_eq!(*per_tenant, vec![vec![4, 5], vec![1, 0], vec![0, 0]]);
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn good_scenario_parses_with_defaults() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.tenants.len(), 3);
    assert_eq!(s.tenants[0].id, "tenant-01");
    assert_eq!(s.run.arrival, Arrival::Poisson);
    assert_eq!(s.tiers.len(), 2);
    assert_eq!(s.workload.hygiene, Hygiene::Scoped);
}

#[test]
fn unknown_top_level_field_is_located() {
    let p = only_problem(&GOOD.replace("name = \"t\"", "name = \"t\"\ncolour = \"blue\""));
    assert_eq!(p.line, Some(4));
    assert!(p.message.contains("unknown field `colour`"), "{}", p.message);
}

#[test]
fn unknown_tier_is_located_with_accepted_list() {
    let p = only_problem(&GOOD.replace("id = \"shared-ec2\"", "id = \"shard-ec2\""));
    assert_eq!(p.field, "tier[1].id");
    assert_eq!(p.line, Some(17));
    assert!(p.accepted.unwrap().contains("`shared-ec2`"));
}

#[test]
fn zero_duration_and_negative_rate_are_rejected() {
    let e = parse(&GOOD.replace("\"5s\"", "\"0s\"").replace("\"1k\"", "-5")).unwrap_err();
    let fields: Vec<_> = e.problems.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"run.duration"), "{e}");
    assert!(fields.contains(&"run.rate"), "{e}");
    let d = e.problems.iter().find(|p| p.field == "run.duration").unwrap();
    assert_eq!(d.line, Some(6));
}

#[test]
fn more_tenants_than_addresses() {
    let s = GOOD.replace("count = 3", "count = 20") + "\n[local]\nsubnet = \"10.213.0.0/28\"\n";
    let p = only_problem(&s);
    assert_eq!(p.field, "tenants.count");
    assert!(p.message.contains("only 13"), "{}", p.message);
}

#[test]
fn unknown_tier_field_names_allowed_ones() {
    let p = only_problem(&GOOD.replace("instance_type = \"t3.micro\"", "instance_type = \"t3.micro\"\nmemory = 5"));
    assert_eq!(p.field, "tier[0].memory");
    assert!(p.accepted.unwrap().contains("`instance_type`"));
}

#[test]
fn wrong_format_version() {
    let p = only_problem(&GOOD.replace("format_version = 1", "format_version = 9"));
    assert_eq!(p.field, "format_version");
    assert_eq!(p.line, Some(2));
}

#[test]
fn unit_errors_come_from_the_toml_parser_with_a_line() {
    let p = only_problem(&GOOD.replace("\"5s\"", "\"5 parsecs\""));
    assert_eq!(p.line, Some(6));
    assert!(p.message.contains("accepted"), "{}", p.message);
}

#[test]
fn duplicate_tenant_ids_and_bad_weights() {
    let s = GOOD.replace("count = 3", "count = 3\nids = [\"a\", \"b\", \"a\"]\nweights = [1, 0, 2]");
    let e = parse(&s).unwrap_err();
    assert!(e.problems.iter().any(|p| p.field == "tenants.ids[2]"), "{e}");
    assert!(e.problems.iter().any(|p| p.field == "tenants.weights[1]"), "{e}");
}

#[test]
fn ec2_tiers_default_to_groups_admitting_only_the_harness() {
    let s = parse(GOOD).unwrap();
    let tenants: Vec<String> = s.tenants.iter().map(|t| t.id.clone()).collect();
    let silo = ec2_network(&s, 0);
    assert_eq!(silo, &ec2::default_network(TierId::SiloEc2));
    let r = silo.resolve("r", &tenants);
    assert_eq!(r.groups.len(), 3, "one group per tenant");
    for (i, (t, g)) in r.tasks.iter().enumerate() {
        assert_eq!(g, &[i]);
        assert_eq!(r.groups[i].name, format!("tenant-{t}"));
        assert_eq!(r.groups[i].ingress.len(), 1);
        assert_eq!(r.groups[i].ingress[0].source, ecs::ResolvedSource::Harness);
        assert_eq!(r.groups[i].ingress[0].ports, Some((DEFAULT_PORT, DEFAULT_PORT)));
    }
    let shared = ec2_network(&s, 1).resolve("r", &tenants);
    assert_eq!(shared.groups.len(), 1);
    assert_eq!(shared.groups[0].name, SHARED_INSTANCE_GROUP);
    assert!(shared.tasks.iter().all(|(_, g)| g == &[0]));
    assert!(s.local.break_isolation.is_empty());
}

#[test]
fn ec2_groups_use_the_ecs_syntax_and_checks() {
    let open = GOOD.replace(
        "instance_type = \"t3.micro\"",
        "instance_type = \"t3.micro\"\n[tier.network]\nsecurity_groups = [\"tenants\"]\n[[tier.security_group]]\nname = \"tenants\"\ningress = [{ port = 8080, source_group = \"harness\" }, { protocol = \"all\", source_group = \"tenants\" }]",
    );
    let s = parse(&open).unwrap();
    let r = ec2_network(&s, 0).resolve("r", &["a".into(), "b".into()]);
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].ingress[1].source, ecs::ResolvedSource::Group(0));

    let p = only_problem(&GOOD.replace(
        "instance_type = \"t3.micro\"",
        "instance_type = \"t3.micro\"\n[tier.network]\nsecurity_groups = [\"ghost\"]",
    ));
    assert_eq!(p.field, "tier[0].network.security_groups[0]");
    assert_eq!(p.line, Some(16));
    assert!(p.accepted.unwrap().contains("`tenant-{tenant}`"), "the default group is defined");

    // The one shared instance cannot join a group per tenant.
    let p = only_problem(&GOOD.replace(
        "instance_type = \"m5.large\"",
        "instance_type = \"m5.large\"\n[tier.network]\nsecurity_groups = [\"tenant-{tenant}\"]\n[[tier.security_group]]\nname = \"tenant-{tenant}\"",
    ));
    assert_eq!(p.field, "tier[1].network.security_groups[0]");
    assert!(p.message.contains("serves every tenant"), "{}", p.message);

    let p = only_problem(
        &GOOD.replace("instance_type = \"t3.micro\"", "instance_type = \"t3.micro\"\nsecurity_groups = []"),
    );
    assert_eq!(p.field, "tier[0].security_groups");
    assert!(p.accepted.unwrap().contains("`security_group`"));
}

#[test]
fn break_isolation_is_a_local_knob() {
    let s = parse(&(GOOD.to_string() + "\n[local]\nbreak_isolation = [\"shared-tmp\", \"shared-tmp\"]\n")).unwrap();
    assert_eq!(s.local.break_isolation, [IsolationFault::SharedTmp]);
    assert_eq!(IsolationFault::SharedTmp.description(), "test fault: silo instances share one /tmp");

    let p = only_problem(&(GOOD.to_string() + "\n[local]\nbreak_isolation = [\"no-pid-ns\"]\n"));
    assert_eq!(p.line, Some(21));
    assert!(p.message.contains("shared-tmp"), "{}", p.message);
}

#[test]
fn hash_is_stable() {
    assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[test]
fn picks_take_a_duration_and_dollars_and_bad_values_are_located() {
    assert!(parse(GOOD).unwrap().picks.is_none());
    let s = parse(&format!("{GOOD}\n[picks]\np99 = \"5ms\"\nbudget = \"$20\"\n")).unwrap();
    let p = s.picks.unwrap();
    assert_eq!((p.p99.unwrap().0, p.budget.unwrap().0), (std::time::Duration::from_millis(5), 20.0));
    assert_eq!(parse(&format!("{GOOD}\n[picks]\nbudget = 7.5\n")).unwrap().picks.unwrap().budget.unwrap().0, 7.5);
    let p = only_problem(&format!("{GOOD}\n[picks]\nbudget = \"20 EUR\"\n"));
    assert_eq!(p.line, Some(21));
    assert!(p.message.contains("`20 EUR` is not a valid amount: unknown unit"), "{}", p.message);
    let p = only_problem(&format!("{GOOD}\n[picks]\np99 = \"5\"\n"));
    assert_eq!(p.line, Some(21));
    assert!(p.message.contains("the unit is missing"), "{}", p.message);
    let p = only_problem(&format!("{GOOD}\n[picks]\np99 = \"0s\"\n"));
    assert_eq!((p.field.as_str(), p.line), ("picks.p99", Some(21)));
    let p = only_problem(&format!("{GOOD}\n[picks]\nbudget = 0\n"));
    assert_eq!((p.field.as_str(), p.line), ("picks.budget", Some(21)));
    let p = only_problem(&format!("{GOOD}\n[picks]\nlatency = \"5ms\"\n"));
    assert!(p.message.contains("unknown field `latency`"), "{}", p.message);
}

#[test]
fn explore_section_parses_and_bad_ones_are_located() {
    let ok = format!("{GOOD}\n[explore]\nvary = {{ tenants = [2, \"1k\"], rate = [\"100\", 2000] }}\n");
    let s = parse(&ok).unwrap();
    let v = &s.explore.as_ref().unwrap().vary;
    assert_eq!(v.tenants.as_deref(), Some(&[explore::Count(2), explore::Count(1000)][..]));
    assert_eq!(v.rate.as_ref().unwrap().iter().map(|r| r.0).collect::<Vec<_>>(), [100.0, 2000.0]);

    let unknown = format!("{GOOD}\n[explore]\nvary = {{ memory = [1] }}\n");
    let p = only_problem(&unknown);
    assert!(p.message.contains("unknown field `memory`"), "{p:?}");
    assert_eq!(p.line, Some(21), "{p:?}");

    let empty = format!("{GOOD}\n[explore]\nvary = {{ tenants = [] }}\n");
    let p = only_problem(&empty);
    assert_eq!(p.field, "explore.vary.tenants");
    assert!(p.message.contains("empty") && p.line == Some(21), "{p:?}");

    let dup = format!("{GOOD}\n[explore]\nvary = {{ rate = [\"1k\", 1000] }}\n");
    assert!(only_problem(&dup).message.contains("listed twice"));

    let weights = GOOD.replace("count = 3", "count = 3\nweights = [1, 2, 3]");
    let p = only_problem(&format!("{weights}\n[explore]\nvary = {{ tenants = [2, 4] }}\n"));
    assert_eq!(p.field, "tenants.weights");
    assert!(p.accepted.as_deref().unwrap().contains("vary only `rate`"), "{p:?}");
    assert_eq!(p.line, Some(11), "{p:?}");
    // Varying the rate alone keeps the weights.
    assert!(parse(&format!("{weights}\n[explore]\nvary = {{ rate = [10, 20] }}\n")).is_ok());
}

#[test]
fn aws_agents_parse_and_bad_ones_are_located() {
    let s = parse(&format!("{GOOD}\n[aws.agents]\nper_agent_rate = 400\ncpu = 512\nmemory = 1024\n")).unwrap();
    let a = s.aws.agents.as_ref().unwrap();
    assert_eq!(a.count_for(s.run.rate.0), 3);
    assert!(parse(GOOD).unwrap().aws.agents.is_none());
    let p = only_problem(&format!("{GOOD}\n[aws.agents]\ncount = 2\nmemory = 100\n"));
    assert_eq!(p.field, "aws.agents.memory");
    assert_eq!(p.line, Some(22), "{p:?}");
    let p = only_problem(&format!("{GOOD}\n[aws.agents]\ncount = 2\nagents = 3\n"));
    assert!(p.message.contains("unknown field `agents`"), "{p:?}");
    assert_eq!(p.line, Some(22), "{p:?}");
}

#[test]
fn named_tiers_let_one_id_run_several_times_and_names_are_unique() {
    let three = format!(
        "{GOOD}\n[[tier]]\nid = \"eks-pod\"\nname = \"eks-ns-open\"\n\
         [[tier]]\nid = \"eks-pod\"\nname = \"eks-ns-deny\"\nnetwork_policy = \"default-deny\"\n\
         [[tier]]\nid = \"eks-pod\"\nname = \"eks-node\"\npattern = \"node-per-tenant\"\n"
    );
    let s = parse(&three).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = s.tiers.iter().map(|t| (t.id, t.name.as_str())).collect();
    assert_eq!(
        names,
        [
            (TierId::SiloEc2, "silo-ec2"),
            (TierId::SharedEc2, "shared-ec2"),
            (TierId::EksPod, "eks-ns-open"),
            (TierId::EksPod, "eks-ns-deny"),
            (TierId::EksPod, "eks-node"),
        ]
    );
    assert!(matches!(&s.tier_named("eks-ns-deny").unwrap().settings, TierSettings::Eks(e)
        if e.network_policy == eks::NetworkPolicy::DefaultDeny));

    // The same name twice is refused at the second `name`; the same id twice without names at its `id`.
    let p = only_problem(&format!(
        "{GOOD}\n[[tier]]\nid = \"eks-pod\"\nname = \"a\"\n[[tier]]\nid = \"eks-pod\"\nname = \"a\"\n"
    ));
    assert_eq!((p.field.as_str(), p.line), ("tier[3].name", Some(25)), "{p:?}");
    assert!(p.message.contains("`a` is used twice"), "{p:?}");
    let p = only_problem(&format!("{GOOD}\n[[tier]]\nid = \"eks-pod\"\n[[tier]]\nid = \"eks-pod\"\n"));
    assert_eq!(p.field, "tier[3].id");
    assert!(p.accepted.as_deref().unwrap().contains("distinct `name`"), "{p:?}");
    // A name is a slug and no other tier's id (a tier's own id is its default name).
    let p = only_problem(&format!("{GOOD}\n[[tier]]\nid = \"eks-pod\"\nname = \"shared-ec2\"\n"));
    assert_eq!(p.field, "tier[2].name");
    let p = only_problem(&format!("{GOOD}\n[[tier]]\nid = \"eks-pod\"\nname = \"Eks Pod\"\n"));
    assert_eq!(p.field, "tier[2].name");
    assert!(parse(&format!("{GOOD}\n[[tier]]\nid = \"eks-pod\"\nname = \"eks-pod\"\n")).is_ok());
    // Other tiers take a name too.
    let s = parse(&GOOD.replace("id = \"silo-ec2\"", "id = \"silo-ec2\"\nname = \"silo-small\"")).unwrap();
    assert_eq!(s.tiers[0].name, "silo-small");
}
