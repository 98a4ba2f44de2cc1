//! What a run's figures can stand for: the statement every report opens with, so nobody
//! mistakes the local emulator for AWS. One text, rendered by `report.md`, the HTML page and
//! the terminal.

use isobench_results::{Fidelity, Summary};

/// What was real in a run and what was not.
pub struct Limits {
    pub title: &'static str,
    pub real: Vec<String>,
    pub not_aws: Vec<String>,
}

/// The limits of the run's backend, or `None` for a run on AWS itself.
pub fn limits(s: &Summary) -> Option<Limits> {
    match s.backend.fidelity {
        Fidelity::Cloud => None,
        Fidelity::Emulated | Fidelity::ProcessOnly => Some(local(s)),
        Fidelity::CloudEmulator => Some(Limits {
            title: "AWS APIs served by an emulator",
            real: vec!["the AWS API calls a deployment makes, and their teardown".into()],
            not_aws: vec![
                "nothing runs in the resources: no traffic, latency or leak figure is AWS's".into(),
                "the emulator accepts some requests AWS would refuse, and the reverse".into(),
            ],
        }),
        Fidelity::External => Some(Limits {
            title: "endpoints the harness did not deploy",
            real: vec!["the traffic and the probes, against the endpoints as they are".into()],
            not_aws: vec![
                "the harness does not know how the endpoints are isolated or priced: expectations and cost are the scenario's claims"
                    .into(),
            ],
        }),
    }
}

fn local(s: &Summary) -> Limits {
    let cpus = s.host.cpus;
    let mut real = vec![
        format!("the isolation mechanisms: {}", s.backend.description),
        "the protocols: the workload's HTTP and the Lambda Runtime API".into(),
        "every probe's attempt, and whether those mechanisms stopped it".into(),
    ];
    let mut not_aws = vec![
        "one kernel: every tier shares this host's kernel (on AWS, EC2 instances are separate VMs; Lambda environments and Fargate tasks run in Firecracker microVMs), so kernel-wide state (/proc/stat, /proc/meminfo, /proc/loadavg, boot_id, the page cache) is shared between all tiers here".into(),
        format!("shared cores: every tenant and the load generator run on this host's {cpus} CPUs, so noisy-neighbour figures are host contention, and latencies, start times and throughput are this host's"),
        "no IAM: credentials are served with the roles' names only and no policy is evaluated".into(),
        "costs are modelled from the pricing table, not billed".into(),
    ];
    if s.tiers.iter().any(|t| t.tier_id().starts_with("lambda-")) && s.backend.fidelity == Fidelity::Emulated {
        not_aws.push(LAMBDA.into());
    }
    if s.backend.fidelity == Fidelity::ProcessOnly {
        real = vec!["the protocols: the workload's HTTP and the Lambda Runtime API".into()];
        not_aws.insert(0, "no isolation at all: plain processes on loopback (reduced fidelity)".into());
    }
    Limits { title: "local emulation on one Linux host", real, not_aws }
}

/// What an emulated Lambda environment is not.
const LAMBDA: &str = "Lambda environments are processes in namespaces and a cgroup each, not microVMs: a cold start is this host's process start (no code download, no placement), the CPU share follows memory through a CFS quota per 100 ms period (a 128 MB function gets 7% of a CPU and waits for its quota when busy), and an environment's network is a veth on a bridge of this host, egress only: to an emulated internet responder of the run, or with `vpc` where its security groups' outbound rules allow within the emulator's range (no real internet, no NAT, no Hyperplane ENI, no other tier's members); nothing connects in, as on Lambda";

impl Limits {
    /// `report.md`'s block quote.
    pub fn markdown(&self) -> String {
        let mut o = format!("> **What this run is: {}.**\n>\n", self.title);
        o += &format!("> Real here: {}.\n>\n", self.real.join("; "));
        o += "> Not AWS:\n";
        for n in &self.not_aws {
            o += &format!("> - {n}\n");
        }
        o
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        format!("{}: real isolation mechanisms, not AWS (see report.md, \"What this run is\")", self.title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_run_says_it_shares_one_kernel_and_the_cores() {
        let mut s: Summary = serde_json::from_str(include_str!("../../../results/bench/leakage/summary.json")).unwrap();
        s.backend.fidelity = Fidelity::Emulated;
        s.host.cpus = 2;
        let md = limits(&s).expect("a local run has limits").markdown();
        assert!(md.contains("one kernel"), "{md}");
        assert!(md.contains("this host's 2 CPUs"), "{md}");
        assert!(md.contains("no IAM"), "{md}");
        s.backend.fidelity = Fidelity::Cloud;
        assert!(limits(&s).is_none());
    }

    #[test]
    fn a_local_run_with_lambda_tiers_says_what_an_environment_is_not() {
        let mut s: Summary = serde_json::from_str(include_str!("../../../results/bench/leakage/summary.json")).unwrap();
        s.backend.fidelity = Fidelity::Emulated;
        assert!(s.tiers.iter().any(|t| t.tier.starts_with("lambda-")));
        assert!(limits(&s).unwrap().markdown().contains("not microVMs"));
        s.tiers.retain(|t| !t.tier.starts_with("lambda-"));
        assert!(!limits(&s).unwrap().markdown().contains("not microVMs"));
    }
}
