//! The local emulator: isobench's default backend, which reproduces AWS compute isolation
//! models on one Linux host with the kernel's own isolation, so that cross-tenant leakage is
//! measured against real boundaries and not a simulation of them.
//!
//! # Where each tier lives
//! One module per kind of tier under `tiers/`, each behind the trait `TierDriver` (deploy,
//! teardown, the tier's instances), the way the cgroup layouts are behind `CgroupDriver`. The
//! backend ([`LocalBackend`], `backend.rs`) picks the driver once per deploy from the tier's
//! id (`tiers::tier_driver`), keeps it until the tier's teardown, and never looks at a tier's
//! settings. A tier module alone says how its tenants map onto instances or functions
//! (layout), how big each is (sizing), what they need first (security groups, metadata
//! endpoints, a cluster bridge), and how they are deployed and torn down:
//!
//! | tier | module |
//! |---|---|
//! | `silo-ec2`, `shared-ec2` | `tiers/ec2.rs` |
//! | `ecs-awsvpc` | `tiers/ecs.rs` |
//! | `eks-pod` | `tiers/eks.rs` |
//! | `lambda-per-tenant`, `lambda-shared`, `lambda-tenant-isolation` | `tiers/lambda.rs` |
//!
//! The machinery they call knows no tier: `instance` (start and stop instances), `lambda`
//! (functions and their execution environments), `security_groups` (nftables rules, for the
//! EC2 and ECS tiers alike), `metadata` (IMDS and the ECS agent endpoint), `launcher` (the
//! thread that owns the harness namespace), `cgroup`, `netlink` and [`sandbox`]. What every tier
//! of one backend shares (the run's lock and cgroups, uids, addresses, the isolation faults,
//! the EC2 instances' IMDS, the Lambda runtime) is `context::Context`, handed to each driver
//! call.
//!
//! # What an instance is
//! An emulated EC2 instance is a set of fresh net, mount, pid, uts and ipc namespaces; private
//! tmpfs mounts on `/tmp`, `/var/tmp` and `/dev/shm`; a dedicated uid and gid (`200000 + n`
//! by default, never one listed in `/etc/passwd` or `/etc/group`); a cgroup sized from the
//! instance type (vCPUs × 100 ms per 100 ms period, capped at the host's CPU count; the
//! memory limit; a pids limit); and a veth pair whose host end sits on a bridge and whose
//! other end is `eth0` inside the instance with the next address of the plan's subnet.
//! `silo-ec2` runs one instance per tenant, `shared-ec2` one for every tenant.
//!
//! As on AWS, an EC2 instance also has security groups and an instance profile: nftables rules
//! in the harness namespace (by default each silo instance in its own group, the shared one in
//! one group, each admitting only the harness on the workload's port) and an IMDS at
//! `169.254.169.254` that answers each instance with its own role
//! (`isobench-<run>-instance-<tenant>`, or `-shared`), its only route besides the subnet. See
//! `tiers/ec2.rs` and [`LocalBackend::instance_network`].
//!
//! # What an ECS task adds
//! An `ecs-awsvpc` task is such an instance sized from the task definition (1024 CPU units are
//! one vCPU), whose veth is a port of the cluster's own bridge (`ecs0`), whose security groups
//! are nftables rules in the harness namespace, and whose environment points at a task-role
//! credentials endpoint at `169.254.170.2`; on the EC2 launch type the container instance's
//! IMDS at `169.254.169.254` is reachable too unless blocked. See `tiers/ecs.rs`, the
//! `metadata` module and [`EcsCluster`].
//!
//! # What an EKS pod adds
//! An `eks-pod` pod is such an instance sized from the pod's requests (= limits, millicores and
//! MiB) whose veth ends in its *node*: a network namespace that forwards, wired to the
//! cluster's bridge (`eks0`), holding the pods' host routes, the tenant namespaces'
//! `NetworkPolicy` objects as nftables rules (`network_policy`) and the security groups for
//! pods. The pod routes everything through `169.254.1.1` (its node), so IMDS is one hop
//! further than from the node, as on AWS, and the node's hop limit decides whether the token
//! answer arrives. Pods get their service account's role from the Pod Identity agent or the
//! emulated STS (IRSA), a projected token in their own `/run`. See `tiers/eks.rs` and
//! [`EksCluster`].
//!
//! # What a Lambda execution environment is
//! The `lambda-*` tiers deploy functions, not instances: each function's execution
//! environments are started on demand by its invokes (a sandbox with only `lo`, the function's
//! code read-only at `/var/task`, the rest of the filesystem read-only, a private `/tmp`), kept
//! frozen between invokes and shut down after an idle keep-alive. See `tiers/lambda.rs`, the
//! `lambda` module, [`EnvironmentInfo`] and [`LocalBackend::environments`].
//!
//! # Main choices
//! - **Nothing on the host network.** Each backend creates a *harness network namespace*
//!   (in-process, `unshare(CLONE_NEWNET)` on its launcher thread) holding the bridge `br0`
//!   with the subnet's first address. Traffic only ever flows between namespaces the harness
//!   made; the load driver joins the harness namespace through [`Deployment::netns`]. Since no
//!   namespace is bind-mounted, a crashed harness leaves only processes and cgroups behind,
//!   which [`sweep()`] finds by enumerating the host.
//! - **Netlink and syscalls, never `ip`/`unshare`/`nft` processes per instance**: each of
//!   those costs 1.6–2 ms (`nft` ~12–15 ms); the whole instance start is budgeted in single
//!   milliseconds. Veths are never deleted one by one (16 ms each): dropping an instance's
//!   namespace deletes its veth. The one process the emulator runs is `nft -f -`, once per
//!   `ecs-awsvpc` or EC2 tier deploy and teardown, inside the harness namespace (the `nft`
//!   module).
//! - **A single-threaded sandbox executable** (`isobench-sandbox`, [`sandbox`]) performs the
//!   isolation steps in one visible order, because mounting, unsharing and forking in
//!   `pre_exec` of a multi-threaded parent is unsound.
//! - **One launcher thread per backend** forks every sandbox: `PR_SET_PDEATHSIG` is tied to
//!   the forking *thread*, so sandboxes die with the harness, and never with a pool thread.
//! - **cgroups through a small trait** with a v1 (hybrid) and a v2 implementation chosen once
//!   at start-up. On a hybrid host the v2 tree is joined too, for `cgroup.kill` and
//!   `cgroup.freeze`. Only the workload's process tree is in an instance's cgroups (the sandbox
//!   waits outside), so a kill through the cgroup ends the workload, the sandbox reaps it, and
//!   the backend reaps the sandbox: teardown orphans nothing. The workload is forked straight
//!   into the v2 cgroup (`CLONE_INTO_CGROUP`) and moves its own single thread into the v1 ones
//!   (`tasks`), because writing a pid to `cgroup.procs` takes a global kernel lock whose first
//!   use after an idle spell waits for an RCU grace period: 6–18 ms measured here, more than
//!   the rest of an instance start together.
//! - **No ARP between the harness and an instance**: permanent neighbour entries on both sides
//!   (the instance's MAC is chosen by the harness), and both veth ends are running before the
//!   sandbox starts. A first ARP request lost while a fresh link comes up is otherwise retried
//!   only after a second, which showed up as 1 s outliers in start time.
//! - **A run lock** (`/run/isobench/<run_id>.lock`, `flock`) tells a sweep which runs are
//!   alive; it is taken before anything is created and dropped after everything is removed.
//!
//! Start time (in [`InstanceInfo::start_time`]) runs from the creation of the instance's
//! cgroup to the workload's first `200` on `GET /healthz`, polled every ~200 µs from the
//! harness namespace.
//!
//! # Deliberately broken isolation
//! For testing the probes and the CI gate, a scenario's `[local] break_isolation` names faults
//! the emulator injects into its own boundaries (carried by each tier's plan, so results say
//! so). `shared-tmp`: silo instances share one /tmp, a tmpfs the backend mounts at
//! `/run/isobench/<run_id>.shared-tmp` and every instance (and ECS task) binds at `/tmp`;
//! teardown removes it, and [`sweep()`] finds it after a crash. See the `faults` module.
//!
//! # Known gaps
//! - `/sys` is the host's (read-only for the instance's uid), and the cgroup namespace is not
//!   unshared, so a workload can read its own cgroup path (which names the run).
//! - The workload must be an executable file (ELF), not a `#!` script: it is executed through
//!   a close-on-exec descriptor, which a script's interpreter could not reopen.
//! - After a harness *crash* the death signals end every sandbox and workload, but they are
//!   then orphans: until the host's init reaps them (this project's VMs do so only now and
//!   then) they stay as zombies, which hold no resources and which [`sweep()`] ignores.
//! - A Lambda environment sees the host's root filesystem (read-only, with `/var`, `/run` and
//!   `/dev/shm` hidden), not an Amazon Linux image: a function's code finds the host's
//!   libraries and interpreters. (A `#!` bootstrap works: it is executed by path.)
//! - A Lambda environment is frozen right after its invoke's outcome is delivered, not when its
//!   runtime next calls `/next` as on Lambda (the Runtime API server does not say when that
//!   happens), so a runtime may be frozen before it asks for the next invocation and ask on
//!   thaw: one extra loopback round trip in the next warm invoke.
//!
//! [`Deployment::netns`]: isobench_core::Deployment::netns
//! [`InstanceInfo::start_time`]: isobench_core::InstanceInfo::start_time

#![cfg(target_os = "linux")]

pub mod agent_net;
pub mod agent_pool;
mod backend;
mod caps;
mod cgroup;
mod config;
mod context;
mod error;
mod faults;
mod instance;
mod lambda;
mod launcher;
mod lock;
mod metadata;
mod netlink;
mod netns;
mod network_policy;
mod nft;
pub mod sandbox;
mod security_groups;
mod sweep;
mod tiers;
mod workload;

pub use backend::LocalBackend;

/// Whether this process may run the emulator (root, or the capabilities it needs), before any
/// run is prepared: `Err` says what is missing. `LocalBackend::new` checks this and more.
pub fn check_privileges() -> Result<(), String> {
    caps::check()
}
pub use cgroup::ISOBENCH_DIR;
pub use config::{LocalConfig, SANDBOX_EXE, WORKLOAD_EXE};
pub use error::{FsError, InstanceError, NetworkError, SweepError};
pub use faults::SHARED_TMP_SUFFIX;
pub use lambda::{
    EnvironmentInfo, EnvironmentState, FunctionInfo, FunctionRole, LambdaDeployError, ReserveError, STAGED_SUFFIX,
    StageError, invoke_errors,
};
pub use launcher::{BRIDGE, INSTANCE_IF, POD_GATEWAY};
pub use lock::{LOCK_DIR, lock_path};
pub use metadata::{ECS_AGENT_ADDR, IMDS_ADDR, METADATA_PORT};
pub use nft::NftError;
pub use sweep::{NETNS_DIR, NETNS_PREFIX, SweepOptions, SweepReport, sweep};
pub use tiers::ec2::{Ec2Instance, InstanceNetwork};
pub use tiers::ecs::{CLUSTER_BRIDGE, EcsCluster, EcsTask};
pub use tiers::eks::{CLUSTER_BRIDGE_PREFIX, EksCluster, EksNode, EksPod, NODE_TABLE};
