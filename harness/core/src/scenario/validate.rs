//! Validation: every semantic check of a scenario, done before anything is deployed. Each
//! check names its field's path; [`Checker::finish`] locates them in the source.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use super::model::{
    FORMAT_VERSION, LOCAL_RANGE, LocalSpec, MixSpec, NoisySpec, PicksSpec, ProbesSpec, RunSpec, Scenario, TenantSpec,
    TierSettings, TierSpec, WorkloadSpec,
};
use super::raw::{RawLocal, RawScenario, RawTenants};
use super::{arrivals_check, ec2, ecs, eks, lambda};
use crate::diagnostics::{Checker, InvalidFile, Problem, syntax_problem};
use crate::tier::TierId;

/// Everything wrong with a scenario file.
pub type ScenarioError = InvalidFile;

/// What a scenario is called in its errors (`invalid scenario FILE`).
const WHAT: &str = "scenario";

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<(Scenario, String), ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            what: WHAT,
            file: path.to_path_buf(),
            problems: vec![Problem::new(
                "",
                format!("cannot read the file: {e}"),
                "a readable TOML scenario file, e.g. scenarios/quick.toml",
            )],
        })?;
        let s = Scenario::parse(&src, path)?;
        Ok((s, src))
    }

    /// Parses and validates scenario text; `file` is used in error messages only.
    pub fn parse(src: &str, file: &Path) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(src).map_err(|e| syntax_error(src, file, &e))?;
        let mut c = Checker::default();
        let scenario = validate(raw, file, &mut c);
        c.finish(src, WHAT, file.to_path_buf())?;
        Ok(scenario)
    }
}

/// A TOML or type error, before any semantic check.
fn syntax_error(src: &str, file: &Path, e: &toml::de::Error) -> ScenarioError {
    let mut problem = syntax_problem(src, e);
    // toml's message for an unknown field already lists the expected ones.
    if !problem.message.contains("unknown field") && problem.message.contains("format_version") {
        problem.accepted = Some(format!("format_version = {FORMAT_VERSION}"));
    }
    ScenarioError { what: WHAT, file: file.to_path_buf(), problems: vec![problem] }
}

fn validate(raw: RawScenario, file: &Path, c: &mut Checker) -> Scenario {
    c.check(
        raw.format_version == FORMAT_VERSION,
        "format_version",
        format!("format version {} is not supported by this build", raw.format_version),
        &format!("{FORMAT_VERSION}"),
    );
    c.check(is_slug(&raw.name, 64), "name", format!("`{}` is not a valid name", raw.name), SLUG_ACCEPTED);
    validate_run(&raw.run, c);
    validate_workload(&raw.workload, c);
    validate_mix(&raw.mix, c);
    let local = validate_local(&raw.local, c);
    for (field, message, accepted) in raw.aws.problems() {
        c.fail(field, message, accepted);
    }
    let tenants = validate_tenants(&raw.tenants, c);
    let mut tiers = validate_tiers(&raw.tier, file, c);
    fill_architectures(&mut tiers, raw.aws.architecture);
    let trace = arrivals_check::validate(&raw.arrivals, raw.tenants.weights.is_some(), file, c);
    let mut workload = raw.workload;
    if let Some(n) = &raw.noisy_neighbour {
        validate_noisy(n, &tenants, c);
    }
    if let Some(p) = &raw.picks {
        validate_picks(p, c);
    }
    if let Some(p) = &raw.probes {
        validate_probes(p, tenants.len(), c);
        workload.probes = true;
    }
    let per_tenant_addresses = |t: &TierSpec| matches!(t.id, TierId::SiloEc2 | TierId::EcsAwsvpc);
    if tiers.iter().any(per_tenant_addresses) && (tenants.len() as u64) > local.capacity() {
        c.fail(
            "tenants.count",
            format!(
                "{} tenants need {} instance or task addresses but subnet /{} has only {}",
                tenants.len(),
                tenants.len(),
                local.subnet.1,
                local.capacity()
            ),
            format!("at most {} tenants, or a larger `local.subnet`", local.capacity()),
        );
    }
    check_reservations(&raw.tier, &tiers, tenants.len(), local.lambda_account_concurrency, c);
    if let Some(e) = &raw.explore {
        super::explore::validate(e, raw.tenants.weights.is_some(), raw.tenants.ids.is_some(), c);
    }
    let mut scenario = Scenario {
        format_version: raw.format_version,
        name: raw.name,
        description: raw.description,
        run: raw.run,
        workload,
        mix: raw.mix,
        tenants,
        tiers,
        local,
        aws: raw.aws,
        probes: raw.probes,
        noisy_neighbour: raw.noisy_neighbour,
        picks: raw.picks,
        arrivals: raw.arrivals,
        explore: raw.explore,
        trace,
    };
    scenario.reseed_weights(scenario.run.seed);
    scenario
}

const SLUG_ACCEPTED: &str = "lowercase letters, digits and `-`, starting with a letter or digit";

fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !s.starts_with('-')
}

fn validate_run(run: &RunSpec, c: &mut Checker) {
    use std::time::Duration;
    let d = run.duration.0;
    c.check(
        d > Duration::ZERO && d <= Duration::from_secs(24 * 3600),
        "run.duration",
        format!("duration {} is out of range", run.duration),
        "more than 0s and at most 24h",
    );
    c.check(
        run.rate.0 > 0.0 && run.rate.0 <= 10e6,
        "run.rate",
        format!("rate {} requests/s is out of range", run.rate.0),
        "more than 0 and at most 10M requests/s",
    );
    c.check(
        run.timeout.0 > Duration::ZERO && run.timeout.0 <= Duration::from_secs(900),
        "run.timeout",
        format!("timeout {} is out of range", run.timeout),
        "more than 0s and at most 15m",
    );
    c.check(
        (1..=100_000).contains(&run.max_connections),
        "run.max_connections",
        format!("{} connections is out of range", run.max_connections),
        "1 to 100000",
    );
    let b = &run.error_budget;
    c.check(
        b.share > 0.0 && b.share <= 1.0,
        "run.error_budget.share",
        format!("{} is not a fraction above 0", b.share),
        "a number above 0 and at most 1",
    );
    c.check(
        b.window.0 > Duration::ZERO && b.window.0 <= Duration::from_secs(3600),
        "run.error_budget.window",
        format!("window {} is out of range", b.window),
        "more than 0s and at most 1h",
    );
    c.check(b.min_requests >= 1, "run.error_budget.min_requests", "0 requests", "1 or more");
}

fn validate_workload(w: &WorkloadSpec, c: &mut Checker) {
    c.check(
        w.record_size.0 <= 1 << 20,
        "workload.record_size",
        format!("{} bytes is too large", w.record_size.0),
        "at most 1MiB",
    );
    c.check(
        w.compute.0 <= std::time::Duration::from_secs(1),
        "workload.compute",
        format!("{} of CPU per request is too long", w.compute),
        "at most 1s",
    );
    c.check((1..=1_000_000).contains(&w.keys_per_tenant), "workload.keys_per_tenant", "out of range", "1 to 1000000");
    if let Some(f) = &w.faults {
        for (name, v) in
            [("error_rate", f.error_rate), ("error_body_rate", f.error_body_rate), ("stall_rate", f.stall_rate)]
        {
            c.check(
                (0.0..=1.0).contains(&v),
                &format!("workload.faults.{name}"),
                format!("{v} is not a fraction"),
                "a number from 0 to 1",
            );
        }
        c.check(
            f.error_rate + f.error_body_rate + f.stall_rate <= 1.0,
            "workload.faults",
            "error_rate + error_body_rate + stall_rate exceeds 1",
            "rates whose sum is at most 1",
        );
    }
}

fn validate_probes(p: &ProbesSpec, tenants: usize, c: &mut Checker) {
    let known = || crate::probes::CATALOGUE.iter().map(|d| format!("`{}`", d.id)).collect::<Vec<_>>().join(", ");
    for (i, id) in p.only.iter().enumerate() {
        if crate::probes::probe(id).is_none() {
            c.fail(format!("probes.only[{i}]"), format!("unknown probe `{id}`"), known());
        }
    }
    c.check(
        (1..=100_000).contains(&p.trials),
        "probes.trials",
        format!("{} trials is out of range", p.trials),
        "1 to 100000",
    );
    c.check(tenants >= 2, "probes", "cross-tenant probes need at least two tenants", "tenants.count of 2 or more");
}

fn validate_picks(p: &PicksSpec, c: &mut Checker) {
    if let Some(d) = p.p99 {
        c.check(
            !d.0.is_zero(),
            "picks.p99",
            "a p99 bound of zero excludes every tier",
            "a duration above 0, e.g. `5ms`",
        );
    }
    if let Some(b) = p.budget {
        c.check(b.0 > 0.0, "picks.budget", "a budget of $0 excludes every tier", "US dollars above 0, e.g. `$20`");
    }
}

fn validate_noisy(n: &NoisySpec, tenants: &[TenantSpec], c: &mut Checker) {
    if let Some(a) = &n.aggressor
        && !tenants.iter().any(|t| &t.id == a)
    {
        let ids = tenants.iter().take(8).map(|t| format!("`{}`", t.id)).collect::<Vec<_>>().join(", ");
        c.fail(
            "noisy_neighbour.aggressor",
            format!("no tenant `{a}`"),
            format!("one of the scenario's tenants: {ids}"),
        );
    }
    c.check(
        tenants.len() >= 2,
        "noisy_neighbour",
        "needs an aggressor and at least one victim",
        "tenants.count of 2 or more",
    );
    c.check((3..=100).contains(&n.rounds), "noisy_neighbour.rounds", format!("{} rounds", n.rounds), "3 to 100");
    c.check(n.rate.0 > 0.0, "noisy_neighbour.rate", "the aggressor needs a rate", "more than 0 requests/s");
    c.check(
        n.compute.0 <= std::time::Duration::from_secs(1),
        "noisy_neighbour.compute",
        format!("{} per request is too long", n.compute),
        "at most 1s",
    );
    c.check(
        n.window.0 >= std::time::Duration::from_millis(500),
        "noisy_neighbour.window",
        "window too short for a p99",
        "at least 500ms",
    );
}

fn validate_mix(m: &MixSpec, c: &mut Checker) {
    for (name, v) in [("put", m.put), ("get", m.get), ("compute", m.compute)] {
        c.check(v >= 0.0 && v.is_finite(), &format!("mix.{name}"), format!("weight {v} is negative"), "0 or more");
    }
    c.check(m.put + m.get + m.compute > 0.0, "mix", "every operation has weight 0", "at least one positive weight");
}

fn validate_local(l: &RawLocal, c: &mut Checker) -> LocalSpec {
    let mut break_isolation = l.break_isolation.clone();
    break_isolation.sort();
    break_isolation.dedup();
    let account = l.lambda_account_concurrency.unwrap_or(lambda::DEFAULT_ACCOUNT_CONCURRENCY);
    c.check(
        (1..=1_000_000).contains(&account),
        "local.lambda_account_concurrency",
        format!("{account} is out of range"),
        "1 to 1000000 (AWS's default is 1000)",
    );
    let default = LocalSpec {
        subnet: LOCAL_RANGE,
        break_isolation: break_isolation.clone(),
        lambda_account_concurrency: account,
    };
    let Some(s) = &l.subnet else { return default };
    const ACCEPTED: &str = "a CIDR inside 10.213.0.0/16 with a prefix from /16 to /29, e.g. `10.213.0.0/24`";
    let parsed = s.split_once('/').and_then(|(a, p)| Some((a.parse::<Ipv4Addr>().ok()?, p.parse::<u8>().ok()?)));
    match parsed {
        Some((addr, prefix)) if (16..=29).contains(&prefix) => {
            let inside = u32::from(addr) & 0xffff_0000 == u32::from(LOCAL_RANGE.0);
            let aligned = u32::from(addr) & !(u32::MAX << (32 - prefix)) == 0;
            if !inside || !aligned {
                c.fail("local.subnet", format!("`{s}` is outside the harness's range or not aligned"), ACCEPTED);
                return default;
            }
            LocalSpec { subnet: (addr, prefix), break_isolation, lambda_account_concurrency: account }
        }
        _ => {
            c.fail("local.subnet", format!("`{s}` is not a valid subnet"), ACCEPTED);
            default
        }
    }
}

fn validate_tenants(t: &RawTenants, c: &mut Checker) -> Vec<TenantSpec> {
    if t.count == 0 || t.count > 100_000 {
        c.fail("tenants.count", format!("{} tenants is out of range", t.count), "1 to 100000");
        return Vec::new();
    }
    let n = t.count as usize;
    let ids: Vec<String> = match &t.ids {
        Some(ids) => {
            if ids.len() != n {
                c.fail("tenants.ids", format!("{} ids for {n} tenants", ids.len()), "one id per tenant");
            }
            let mut seen = BTreeSet::new();
            for (i, id) in ids.iter().enumerate() {
                if !is_slug(id, 32) {
                    c.fail(format!("tenants.ids[{i}]"), format!("`{id}` is not a valid tenant id"), SLUG_ACCEPTED);
                } else if !seen.insert(id) {
                    c.fail(format!("tenants.ids[{i}]"), format!("tenant id `{id}` is repeated"), "unique ids");
                }
            }
            ids.clone()
        }
        None => {
            let width = n.to_string().len().max(2);
            (1..=n).map(|i| format!("tenant-{i:0width$}")).collect()
        }
    };
    let weights = match &t.weights {
        Some(w) => {
            if w.len() != n {
                c.fail("tenants.weights", format!("{} weights for {n} tenants", w.len()), "one weight per tenant");
            }
            for (i, v) in w.iter().enumerate() {
                if !(*v > 0.0 && v.is_finite()) {
                    c.fail(format!("tenants.weights[{i}]"), format!("weight {v} is not positive"), "a number above 0");
                }
            }
            w.clone()
        }
        None => vec![1.0; n],
    };
    ids.into_iter()
        .zip(weights.into_iter().chain(std::iter::repeat(1.0)))
        .map(|(id, weight)| TenantSpec { id, weight })
        .collect()
}

/// A Lambda tier's reserved concurrency, over all its functions (one per tenant in
/// `lambda-per-tenant`), must leave the account at least [`lambda::MIN_UNRESERVED`]
/// unreserved, as Lambda refuses a reservation that would not. Tiers run one after another, so
/// each tier is checked alone.
fn check_reservations(raw: &[toml::Table], tiers: &[TierSpec], tenants: usize, account: u32, c: &mut Checker) {
    for t in tiers {
        let TierSettings::Lambda(l) = &t.settings else { continue };
        let Some(each) = l.reserved_concurrency else { continue };
        let functions = if t.id == TierId::LambdaPerTenant { tenants as u64 } else { 1 };
        let total = u64::from(each) * functions;
        let most = u64::from(account.saturating_sub(lambda::MIN_UNRESERVED));
        let i = raw_index(raw, &t.name);
        c.check(
            total <= most,
            &format!("tier[{i}].reserved_concurrency"),
            format!(
                "{functions} function(s) reserving {each} each take {total} of the account's {account}, leaving fewer than {} unreserved",
                lambda::MIN_UNRESERVED
            ),
            &format!(
                "at most {most} reserved in all (the account's concurrency minus {}); raise `local.lambda_account_concurrency` or reserve less",
                lambda::MIN_UNRESERVED
            ),
        );
    }
}

/// Lambda and Fargate tiers without an `architecture` run on `[aws] architecture`; filled in so
/// that the effective scenario (and the cost model reading it) says which.
fn fill_architectures(tiers: &mut [TierSpec], run_wide: super::aws::Architecture) {
    for t in tiers {
        match &mut t.settings {
            TierSettings::Lambda(l) => l.architecture = l.architecture.or(Some(run_wide)),
            TierSettings::Ecs(e) => e.architecture = e.architecture.or(Some(run_wide)),
            TierSettings::Ec2(_) | TierSettings::Eks(_) => {}
        }
    }
}

/// `file` is the scenario's path: paths in a tier (a function's `code`) are relative to it.
fn validate_tiers(raw: &[toml::Table], file: &Path, c: &mut Checker) -> Vec<TierSpec> {
    if raw.is_empty() {
        c.fail(
            "tier",
            "the scenario names no tier",
            format!("one or more [[tier]] tables with id = {}", TierId::accepted()),
        );
    }
    let mut out: Vec<TierSpec> = Vec::new();
    for (i, table) in raw.iter().enumerate() {
        let at = |f: &str| if f.is_empty() { format!("tier[{i}]") } else { format!("tier[{i}].{f}") };
        let Some(id) = table.get("id").and_then(|v| v.as_str()) else {
            c.fail(at("id"), "every tier needs an `id`", TierId::accepted());
            continue;
        };
        let id: TierId = match id.parse() {
            Ok(t) => t,
            Err(_) => {
                c.fail(at("id"), format!("unknown tier `{id}`"), TierId::accepted());
                continue;
            }
        };
        let Some(name) = tier_name(table, id, &at, c) else { continue };
        if out.iter().any(|t| t.name == name) {
            let message = if table.contains_key("name") {
                format!("tier name `{name}` is used twice")
            } else {
                format!("tier `{id}` is listed twice")
            };
            let field = if table.contains_key("name") { at("name") } else { at("id") };
            c.fail(field, message, "each tier once, or a distinct `name` on each");
            continue;
        }
        let allowed = allowed_tier_fields(id);
        let mut bad = false;
        for key in table.keys() {
            if key != "name" && !allowed.contains(&key.as_str()) {
                bad = true;
                let list = allowed.iter().chain(&["name"]).map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                c.fail(at(key), format!("unknown field `{key}` for tier `{id}`"), list);
            }
        }
        if bad {
            continue;
        }
        // Each tier's parser reads its own fields; the name is the scenario's.
        let mut own = table.clone();
        own.remove("name");
        if let Some(settings) = tier_settings(id, &own, file, &at, c) {
            out.push(TierSpec { id, name, settings });
        }
    }
    out
}

/// A tier's `name`: a slug that is no other tier's id; its id when absent. `None` (with a
/// problem) when invalid.
fn tier_name(table: &toml::Table, id: TierId, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Option<String> {
    let Some(v) = table.get("name") else { return Some(id.as_str().to_string()) };
    let accepted = format!("{SLUG_ACCEPTED}, at most 64 characters, and no other tier's id");
    let name = v.as_str().filter(|n| is_slug(n, 64) && n.parse::<TierId>().map_or(true, |other| other == id));
    if name.is_none() {
        c.fail(at("name"), format!("`{}` is not a valid tier name", v.as_str().unwrap_or(&v.to_string())), accepted);
    }
    name.map(str::to_string)
}

/// The index of the `[[tier]]` table called `name` (its `name`, else its id).
fn raw_index(raw: &[toml::Table], name: &str) -> usize {
    let name_of = |r: &toml::Table| r.get("name").or_else(|| r.get("id")).and_then(|v| v.as_str()).map(str::to_string);
    raw.iter().position(|r| name_of(r).as_deref() == Some(name)).unwrap_or(0)
}

fn allowed_tier_fields(id: TierId) -> &'static [&'static str] {
    match id {
        TierId::SiloEc2 | TierId::SharedEc2 => ec2::FIELDS,
        TierId::EcsAwsvpc => ecs::FIELDS,
        TierId::LambdaPerTenant | TierId::LambdaShared | TierId::LambdaTenantIsolation => lambda::FIELDS,
        TierId::EksPod => eks::FIELDS,
    }
}

fn tier_settings(
    id: TierId,
    table: &toml::Table,
    file: &Path,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) -> Option<TierSettings> {
    match id {
        TierId::SiloEc2 | TierId::SharedEc2 => ec2::parse(id, table, at, c).map(TierSettings::Ec2),
        TierId::EcsAwsvpc => ecs::parse(table, at, c).map(TierSettings::Ecs),
        TierId::LambdaPerTenant | TierId::LambdaShared | TierId::LambdaTenantIsolation => {
            let base = file.parent().unwrap_or(Path::new(""));
            lambda::parse(table, base, at, c).map(TierSettings::Lambda)
        }
        TierId::EksPod => eks::parse(table, at, c).map(TierSettings::Eks),
    }
}
