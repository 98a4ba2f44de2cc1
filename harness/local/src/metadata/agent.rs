//! The ECS agent's endpoint at `169.254.170.2`: task-role credentials at
//! `/v2/credentials/<id>` (the path in `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`) in the JSON
//! shape the agent serves, and task metadata v4 at `/v4/<id>` and `/v4/<id>/task` (the URI in
//! `ECS_CONTAINER_METADATA_URI_V4`).
//!
//! Each credentials id belongs to one task, and a request for it is answered only when it comes
//! from that task's address (tasks cannot change their address: they hold no capabilities, and
//! the bridge drops frames whose source does not match the port). Any other caller gets the
//! agent's answer for an unknown id, HTTP 400 `InvalidIdInRequest`, so a task can neither use
//! another task's id nor learn that it exists. (The real agent keys credentials by id alone;
//! the address check stands for the id being unguessable, and keeps a leaked id from being a
//! leaked role in this emulator.)

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::RwLock;

use super::http::{Handler, Request, Response};
use super::{Credentials, json_str};

/// One task as the agent knows it.
#[derive(Debug, Clone)]
pub(crate) struct AgentTask {
    pub addr: Ipv4Addr,
    /// The id in `/v2/credentials/<id>`.
    pub credentials_id: String,
    /// The id in `/v4/<id>`.
    pub metadata_id: String,
    pub task_arn: String,
    pub family: String,
    pub cpu_units: u32,
    pub memory_mib: u32,
    pub credentials: Credentials,
}

/// What is the same for every task of a cluster.
#[derive(Debug, Clone)]
pub(crate) struct ClusterInfo {
    pub cluster_arn: String,
    pub launch_type: &'static str,
    pub availability_zone: String,
}

/// The agent's state: the tasks it serves.
pub(crate) struct Agent {
    cluster: ClusterInfo,
    tasks: RwLock<HashMap<String, AgentTask>>,
}

const NOT_FOUND: &str =
    r#"{"code":"InvalidIdInRequest","message":"CredentialsV2Request: Credentials not found","HTTPErrorCode":400}"#;
const NO_ID: &str =
    r#"{"code":"NoIdInRequest","message":"CredentialsV2Request: No ID in the request","HTTPErrorCode":400}"#;

impl Agent {
    pub(crate) fn new(cluster: ClusterInfo, tasks: Vec<AgentTask>) -> Agent {
        let tasks = tasks.into_iter().map(|t| (t.credentials_id.clone(), t)).collect();
        Agent { cluster, tasks: RwLock::new(tasks) }
    }

    /// Forgets a task: its credentials and metadata are no longer served (a stopped task's).
    pub(crate) fn remove(&self, addr: Ipv4Addr) {
        self.tasks.write().unwrap_or_else(|e| e.into_inner()).retain(|_, t| t.addr != addr);
    }

    fn owned_by(&self, peer: IpAddr, pick: impl Fn(&AgentTask) -> bool) -> Option<AgentTask> {
        let tasks = self.tasks.read().unwrap_or_else(|e| e.into_inner());
        tasks.values().find(|t| pick(t) && IpAddr::V4(t.addr) == peer).cloned()
    }

    fn credentials(&self, id: &str, peer: IpAddr) -> Response {
        if id.is_empty() {
            return Response::json(400, NO_ID.into());
        }
        match self.owned_by(peer, |t| t.credentials_id == id) {
            Some(t) => {
                let c = &t.credentials;
                Response::json(
                    200,
                    format!(
                        "{{\"RoleArn\":{},\"AccessKeyId\":{},\"SecretAccessKey\":{},\"Token\":{},\"Expiration\":{}}}",
                        json_str(&c.role_arn),
                        json_str(&c.access_key_id),
                        json_str(&c.secret_access_key),
                        json_str(&c.token),
                        json_str(&c.expiration)
                    ),
                )
            }
            None => Response::json(400, NOT_FOUND.into()),
        }
    }

    fn container_json(&self, t: &AgentTask) -> String {
        format!(
            concat!(
                "{{\"DockerId\":{id},\"Name\":\"tenant-app\",\"DockerName\":{dname},\"Image\":\"isobench/tenant-app\",",
                "\"Labels\":{{\"com.amazonaws.ecs.cluster\":{cluster},\"com.amazonaws.ecs.container-name\":\"tenant-app\",",
                "\"com.amazonaws.ecs.task-arn\":{arn},\"com.amazonaws.ecs.task-definition-family\":{family}}},",
                "\"DesiredStatus\":\"RUNNING\",\"KnownStatus\":\"RUNNING\",\"Limits\":{{\"CPU\":{cpu},\"Memory\":{mem}}},",
                "\"Type\":\"NORMAL\",\"Networks\":[{{\"NetworkMode\":\"awsvpc\",\"IPv4Addresses\":[{addr}]}}]}}"
            ),
            id = json_str(&t.metadata_id),
            dname = json_str(&format!("ecs-{}-tenant-app", t.family)),
            cluster = json_str(&self.cluster.cluster_arn),
            arn = json_str(&t.task_arn),
            family = json_str(&t.family),
            cpu = t.cpu_units,
            mem = t.memory_mib,
            addr = json_str(&t.addr.to_string()),
        )
    }

    fn task_json(&self, t: &AgentTask) -> String {
        format!(
            concat!(
                "{{\"Cluster\":{cluster},\"TaskARN\":{arn},\"Family\":{family},\"Revision\":\"1\",",
                "\"DesiredStatus\":\"RUNNING\",\"KnownStatus\":\"RUNNING\",",
                "\"Limits\":{{\"CPU\":{cpu},\"Memory\":{mem}}},\"AvailabilityZone\":{az},\"LaunchType\":{lt},",
                "\"Containers\":[{container}]}}"
            ),
            cluster = json_str(&self.cluster.cluster_arn),
            arn = json_str(&t.task_arn),
            family = json_str(&t.family),
            cpu = f64::from(t.cpu_units) / 1024.0,
            mem = t.memory_mib,
            az = json_str(&self.cluster.availability_zone),
            lt = json_str(self.cluster.launch_type),
            container = self.container_json(t),
        )
    }
}

impl Handler for Agent {
    fn handle(&self, req: &Request, peer: SocketAddr) -> Response {
        if req.method != "GET" {
            return Response::text(405, "method not allowed");
        }
        let path = req.path();
        if let Some(id) = path.strip_prefix("/v2/credentials").map(|r| r.trim_start_matches('/')) {
            return self.credentials(id, peer.ip());
        }
        if let Some(rest) = path.strip_prefix("/v4/") {
            let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
            return match self.owned_by(peer.ip(), |t| t.metadata_id == id) {
                Some(t) if sub.is_empty() => Response::json(200, self.container_json(&t)),
                Some(t) if sub == "task" => Response::json(200, self.task_json(&t)),
                Some(_) => Response::text(404, "not found"),
                None => Response::json(
                    400,
                    r#"{"message":"V4 container metadata handler: unable to get task arn from request"}"#.into(),
                ),
            };
        }
        Response::text(404, "not found")
    }

    fn server_name(&self) -> &'static str {
        "isobench-ecs-agent"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        let task = |addr: [u8; 4], tenant: &str| AgentTask {
            addr: addr.into(),
            credentials_id: format!("cred-{tenant}"),
            metadata_id: format!("meta-{tenant}"),
            task_arn: format!("arn:aws:ecs:us-east-1:000000000000:task/c/{tenant}"),
            family: "fam".into(),
            cpu_units: 256,
            memory_mib: 512,
            credentials: Credentials::issue("r", &format!("arn:aws:iam::000000000000:role/isobench-r-task-{tenant}")),
        };
        Agent::new(
            ClusterInfo {
                cluster_arn: "arn:aws:ecs:us-east-1:000000000000:cluster/c".into(),
                launch_type: "EC2",
                availability_zone: "us-east-1a".into(),
            },
            vec![task([10, 0, 0, 2], "a"), task([10, 0, 0, 3], "b")],
        )
    }

    fn get(a: &Agent, path: &str, from: [u8; 4]) -> Response {
        let req = Request { method: "GET".into(), target: path.into(), headers: vec![], body: vec![] };
        a.handle(&req, SocketAddr::from((from, 40000)))
    }

    #[test]
    fn a_task_gets_its_own_credentials_only() {
        let a = agent();
        let mine = get(&a, "/v2/credentials/cred-a", [10, 0, 0, 2]);
        assert_eq!(mine.status, 200);
        let body = String::from_utf8(mine.body).unwrap();
        assert!(body.contains("\"RoleArn\":\"arn:aws:iam::000000000000:role/isobench-r-task-a\""), "{body}");
        for k in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
            assert!(body.contains(&format!("\"{k}\":\"")), "{body}");
        }
        let theirs = get(&a, "/v2/credentials/cred-a", [10, 0, 0, 3]);
        assert_eq!((theirs.status, String::from_utf8(theirs.body).unwrap()), (400, NOT_FOUND.to_string()));
        assert_eq!(get(&a, "/v2/credentials/", [10, 0, 0, 2]).status, 400);
        assert_eq!(get(&a, "/v4/meta-b/task", [10, 0, 0, 3]).status, 200);
        assert_eq!(get(&a, "/v4/meta-b", [10, 0, 0, 2]).status, 400);
        a.remove([10, 0, 0, 2].into());
        assert_eq!(get(&a, "/v2/credentials/cred-a", [10, 0, 0, 2]).status, 400);
    }
}
