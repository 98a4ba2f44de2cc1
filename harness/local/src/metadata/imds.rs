//! The instance metadata service at `169.254.169.254`: IMDSv2 (a session token from
//! `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`, then requests carrying
//! `X-aws-ec2-metadata-token`) and, unless `http_tokens = "required"`, IMDSv1 (no token). It
//! serves a few standard paths and the instance role's credentials at
//! `/latest/meta-data/iam/security-credentials/<role>`.
//!
//! Two ways to answer: for an ECS cluster ([`Imds::new`]) one container instance answers
//! every caller, so whoever reaches it gets the role every task shares, which is exactly what
//! `ECS_AWSVPC_BLOCK_IMDS` is for; for the EC2 tiers ([`Imds::per_instance`]) each caller is
//! answered as its own instance, chosen by its source address (which the bridge's source check
//! makes unspoofable), as each real instance has an IMDS of its own. A session token is bound
//! to the instance it was issued to.
//!
//! The credentials document is the real one: no `RoleArn` (the probe agent names the principal
//! by the role in the path, and the probe runner maps a role to a tenant by its name's
//! `-<tenant>` ending).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isobench_core::scenario::ecs::ACCOUNT_ID;

use super::http::{Handler, Request, Response};
use super::{AVAILABILITY_ZONE, Credentials, REGION, json_str, random_bytes, random_hex};

const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// Longest token lifetime IMDS grants (6 hours).
const MAX_TTL: u64 = 21_600;

/// An instance (an ECS container instance, or an EC2 tier's instance) as IMDS describes it.
#[derive(Debug, Clone)]
pub(crate) struct InstanceIdentity {
    pub instance_id: String,
    pub instance_type: String,
    pub ami_id: String,
    pub local_ipv4: Ipv4Addr,
    pub mac: [u8; 6],
    pub region: String,
    pub availability_zone: String,
    pub account_id: String,
    pub role: String,
    pub instance_profile_arn: String,
    pub credentials: Credentials,
    /// Whether IMDSv1 (no token) is refused.
    pub tokens_required: bool,
    /// `http_put_response_hop_limit` (1..=64): the IP TTL of the answer to a token `PUT`, so a
    /// caller more routers away than that never gets a token (IMDSv1 GETs are not limited, as
    /// on AWS). `None`: the kernel's default TTL, which is what the ECS and EC2 tiers model (no
    /// router stands between their callers and IMDS, so any limit of 1 or more would pass).
    pub hop_limit: Option<u8>,
}

impl InstanceIdentity {
    /// A fresh instance of `instance_type` at `local_ipv4` whose instance profile carries
    /// `role`, with credentials issued for run `run`; IMDSv1 allowed.
    pub(crate) fn new(
        run: &str,
        role: String,
        instance_type: String,
        local_ipv4: Ipv4Addr,
        mac: [u8; 6],
    ) -> InstanceIdentity {
        InstanceIdentity {
            instance_id: format!("i-0{}", random_hex(8)),
            instance_type,
            ami_id: format!("ami-0{}", random_hex(8)),
            local_ipv4,
            mac,
            region: REGION.into(),
            availability_zone: AVAILABILITY_ZONE.into(),
            account_id: ACCOUNT_ID.into(),
            instance_profile_arn: format!("arn:aws:iam::{ACCOUNT_ID}:instance-profile/{role}"),
            credentials: Credentials::issue(run, &format!("arn:aws:iam::{ACCOUNT_ID}:role/{role}")),
            role,
            tokens_required: false,
            hop_limit: None,
        }
    }
}

pub(crate) struct Imds {
    /// The instance that answers every caller (an ECS container instance); `None` when each
    /// caller must be a registered instance.
    shared: Option<Arc<InstanceIdentity>>,
    /// Registered instances, by their address.
    instances: Mutex<HashMap<IpAddr, Arc<InstanceIdentity>>>,
    /// Session tokens: expiry, and the id of the instance they were issued to.
    tokens: Mutex<HashMap<String, (Instant, String)>>,
}

impl Imds {
    /// One instance's IMDS, which answers every caller as that instance.
    pub(crate) fn new(id: InstanceIdentity) -> Imds {
        Imds { shared: Some(Arc::new(id)), instances: Mutex::default(), tokens: Mutex::default() }
    }

    /// An IMDS that answers each registered instance as itself, and nobody else (403).
    pub(crate) fn per_instance() -> Imds {
        Imds { shared: None, instances: Mutex::default(), tokens: Mutex::default() }
    }

    /// Answers calls from `addr` as `id` from now on.
    pub(crate) fn register(&self, addr: Ipv4Addr, id: InstanceIdentity) {
        self.instances.lock().unwrap_or_else(|e| e.into_inner()).insert(addr.into(), Arc::new(id));
    }

    /// Forgets the instance at `addr` (its tokens stop working with it).
    pub(crate) fn deregister(&self, addr: Ipv4Addr) {
        let gone = self.instances.lock().unwrap_or_else(|e| e.into_inner()).remove(&IpAddr::from(addr));
        if let Some(gone) = gone {
            self.tokens.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, (_, owner)| *owner != gone.instance_id);
        }
    }

    /// Who a caller is.
    fn identity(&self, peer: IpAddr) -> Option<Arc<InstanceIdentity>> {
        let registered = self.instances.lock().unwrap_or_else(|e| e.into_inner()).get(&peer).cloned();
        registered.or_else(|| self.shared.clone())
    }

    fn new_token(&self, ttl: u64, instance_id: &str) -> String {
        let token: String = random_bytes(42).iter().map(|b| format!("{b:02x}")).collect();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tokens.retain(|_, (exp, _)| *exp > now);
        tokens.insert(token.clone(), (now + Duration::from_secs(ttl), instance_id.to_string()));
        token
    }

    /// Whether `token` is live and was issued to the instance `instance_id`.
    fn token_valid(&self, token: &str, instance_id: &str) -> bool {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.get(token).is_some_and(|(exp, owner)| *exp > Instant::now() && owner == instance_id)
    }

    fn mac(id: &InstanceIdentity) -> String {
        id.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    }

    fn hostname(id: &InstanceIdentity) -> String {
        format!("ip-{}.ec2.internal", id.local_ipv4.to_string().replace('.', "-"))
    }

    /// The document at a metadata path of instance `id`, if there is one.
    fn get(id: &InstanceIdentity, path: &str) -> Option<Response> {
        let text = |s: String| Some(Response::text(200, s));
        let role_path = "/latest/meta-data/iam/security-credentials/";
        match path {
            "/" => text("latest".into()),
            "/latest" | "/latest/" => text("dynamic\nmeta-data".into()),
            "/latest/meta-data" | "/latest/meta-data/" => text(
                [
                    "ami-id",
                    "hostname",
                    "iam/",
                    "instance-id",
                    "instance-type",
                    "local-hostname",
                    "local-ipv4",
                    "mac",
                    "placement/",
                ]
                .join("\n"),
            ),
            "/latest/meta-data/ami-id" => text(id.ami_id.clone()),
            "/latest/meta-data/instance-id" => text(id.instance_id.clone()),
            "/latest/meta-data/instance-type" => text(id.instance_type.clone()),
            "/latest/meta-data/local-ipv4" => text(id.local_ipv4.to_string()),
            "/latest/meta-data/hostname" | "/latest/meta-data/local-hostname" => text(Self::hostname(id)),
            "/latest/meta-data/mac" => text(Self::mac(id)),
            "/latest/meta-data/placement" | "/latest/meta-data/placement/" => text("availability-zone\nregion".into()),
            "/latest/meta-data/placement/availability-zone" => text(id.availability_zone.clone()),
            "/latest/meta-data/placement/region" => text(id.region.clone()),
            "/latest/meta-data/iam" | "/latest/meta-data/iam/" => text("info\nsecurity-credentials/".into()),
            "/latest/meta-data/iam/info" => Some(Response::text(
                200,
                format!(
                    "{{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : {},\n  \"InstanceProfileArn\" : {},\n  \"InstanceProfileId\" : \"AIPA{}\"\n}}",
                    json_str(&id.credentials.issued),
                    json_str(&id.instance_profile_arn),
                    &id.instance_id[2..].to_ascii_uppercase(),
                ),
            )),
            "/latest/meta-data/iam/security-credentials" | "/latest/meta-data/iam/security-credentials/" => {
                text(id.role.clone())
            }
            p if p.strip_prefix(role_path).is_some_and(|r| r.trim_end_matches('/') == id.role) => {
                let c = &id.credentials;
                Some(Response::text(
                    200,
                    format!(
                        "{{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : {},\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : {},\n  \"SecretAccessKey\" : {},\n  \"Token\" : {},\n  \"Expiration\" : {}\n}}",
                        json_str(&c.issued),
                        json_str(&c.access_key_id),
                        json_str(&c.secret_access_key),
                        json_str(&c.token),
                        json_str(&c.expiration)
                    ),
                ))
            }
            "/latest/dynamic/instance-identity/document" => Some(Response::text(
                200,
                format!(
                    "{{\n  \"accountId\" : {},\n  \"architecture\" : \"x86_64\",\n  \"availabilityZone\" : {},\n  \"imageId\" : {},\n  \"instanceId\" : {},\n  \"instanceType\" : {},\n  \"privateIp\" : {},\n  \"region\" : {},\n  \"version\" : \"2017-09-30\"\n}}",
                    json_str(&id.account_id),
                    json_str(&id.availability_zone),
                    json_str(&id.ami_id),
                    json_str(&id.instance_id),
                    json_str(&id.instance_type),
                    json_str(&id.local_ipv4.to_string()),
                    json_str(&id.region),
                ),
            )),
            _ => None,
        }
    }
}

impl Handler for Imds {
    fn handle(&self, req: &Request, peer: SocketAddr) -> Response {
        let Some(id) = self.identity(peer.ip()) else {
            // Not an instance this IMDS serves (cannot happen on EC2, where IMDS is per host).
            return Response::text(403, "");
        };
        let path = req.path();
        if path == "/latest/api/token" {
            if req.method != "PUT" {
                return Response::text(405, "");
            }
            // IMDS refuses token requests that went through a proxy.
            if req.header("x-forwarded-for").is_some() {
                return Response::text(403, "");
            }
            return match req.header(TTL_HEADER).and_then(|v| v.parse::<u64>().ok()) {
                Some(ttl) if (1..=MAX_TTL).contains(&ttl) => {
                    let mut r = Response::text(200, self.new_token(ttl, &id.instance_id));
                    r.headers.push(("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl.to_string()));
                    r.ttl = id.hop_limit;
                    r
                }
                _ => Response::text(400, ""),
            };
        }
        if req.method != "GET" && req.method != "HEAD" {
            return Response::text(405, "");
        }
        match req.header(TOKEN_HEADER) {
            Some(t) if !self.token_valid(t, &id.instance_id) => return Response::text(401, ""),
            None if id.tokens_required => return Response::text(401, ""),
            _ => {}
        }
        Self::get(&id, path).unwrap_or_else(|| Response::text(404, "Not Found"))
    }

    fn server_name(&self) -> &'static str {
        "EC2ws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(instance_id: &str, ip: [u8; 4], role: &str, required: bool) -> InstanceIdentity {
        InstanceIdentity {
            instance_id: instance_id.into(),
            instance_type: "m5.large".into(),
            ami_id: "ami-0".into(),
            local_ipv4: ip.into(),
            mac: [2, 0, 0, 0, 0, 1],
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            account_id: "000000000000".into(),
            role: role.into(),
            instance_profile_arn: format!("arn:aws:iam::000000000000:instance-profile/{role}"),
            credentials: Credentials::issue("r", &format!("arn:aws:iam::000000000000:role/{role}")),
            tokens_required: required,
            hop_limit: None,
        }
    }

    fn imds(required: bool) -> Imds {
        Imds::new(identity("i-0123456789abcdef0", [10, 213, 0, 1], "isobench-r-container-instance", required))
    }

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            target: path.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: vec![],
        }
    }

    fn call_from(i: &Imds, r: Request, from: [u8; 4]) -> (u16, String) {
        let resp = i.handle(&r, SocketAddr::from((from, 40000)));
        (resp.status, String::from_utf8(resp.body).unwrap())
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([10, 213, 0, 2], 40000))
    }

    fn call(i: &Imds, r: Request) -> (u16, String) {
        call_from(i, r, [10, 213, 0, 2])
    }

    #[test]
    fn token_flow_and_v1() {
        let i = imds(false);
        let (s, token) = call(&i, req("PUT", "/latest/api/token", &[(TTL_HEADER, "60")]));
        assert_eq!(s, 200);
        let creds = "/latest/meta-data/iam/security-credentials/isobench-r-container-instance";
        let (s, body) = call(&i, req("GET", creds, &[(TOKEN_HEADER, &token)]));
        assert_eq!(s, 200);
        assert!(body.contains("\"Code\" : \"Success\"") && body.contains("\"AccessKeyId\" : \"ASIA"), "{body}");
        assert!(!body.contains("RoleArn"), "as real IMDS: {body}");
        let listed = call(&i, req("GET", "/latest/meta-data/iam/security-credentials/", &[])).1;
        assert_eq!(listed, "isobench-r-container-instance");
        assert_eq!(call(&i, req("GET", creds, &[(TOKEN_HEADER, "forged")])).0, 401);
        assert_eq!(call(&i, req("PUT", "/latest/api/token", &[])).0, 400);
        assert_eq!(call(&i, req("PUT", "/latest/api/token", &[(TTL_HEADER, "21601")])).0, 400);
        assert_eq!(call(&i, req("PUT", "/latest/api/token", &[(TTL_HEADER, "5"), ("x-forwarded-for", "x")])).0, 403);
        assert_eq!(call(&i, req("GET", "/latest/meta-data/nope", &[])).0, 404);
        assert_eq!(call(&i, req("GET", "/latest/meta-data/local-ipv4", &[])).1, "10.213.0.1");

        // Only the token answer carries the hop limit.
        let mut limited = identity("i-l", [10, 213, 0, 1], "r", false);
        limited.hop_limit = Some(1);
        let limited = Imds::new(limited);
        assert_eq!(limited.handle(&req("PUT", "/latest/api/token", &[(TTL_HEADER, "60")]), peer()).ttl, Some(1));
        assert_eq!(limited.handle(&req("GET", "/latest/meta-data/instance-id", &[]), peer()).ttl, None);
        assert_eq!(i.handle(&req("PUT", "/latest/api/token", &[(TTL_HEADER, "60")]), peer()).ttl, None);

        let strict = imds(true);
        assert_eq!(call(&strict, req("GET", "/latest/meta-data/instance-id", &[])).0, 401);
        let (_, t) = call(&strict, req("PUT", "/latest/api/token", &[(TTL_HEADER, "60")]));
        assert_eq!(call(&strict, req("GET", "/latest/meta-data/instance-id", &[(TOKEN_HEADER, &t)])).0, 200);
    }

    #[test]
    fn per_instance_each_caller_gets_its_own_role_and_tokens() {
        let i = Imds::per_instance();
        i.register([10, 0, 0, 2].into(), identity("i-a", [10, 0, 0, 2], "isobench-r-instance-a", false));
        i.register([10, 0, 0, 3].into(), identity("i-b", [10, 0, 0, 3], "isobench-r-instance-b", true));
        let roles = "/latest/meta-data/iam/security-credentials/";
        assert_eq!(call_from(&i, req("GET", roles, &[]), [10, 0, 0, 2]), (200, "isobench-r-instance-a".into()));
        // b requires tokens; a's token is a's alone.
        assert_eq!(call_from(&i, req("GET", roles, &[]), [10, 0, 0, 3]).0, 401);
        let (_, ta) = call_from(&i, req("PUT", "/latest/api/token", &[(TTL_HEADER, "60")]), [10, 0, 0, 2]);
        assert_eq!(call_from(&i, req("GET", roles, &[(TOKEN_HEADER, &ta)]), [10, 0, 0, 3]).0, 401);
        let (_, tb) = call_from(&i, req("PUT", "/latest/api/token", &[(TTL_HEADER, "60")]), [10, 0, 0, 3]);
        let b =
            call_from(&i, req("GET", &format!("{roles}isobench-r-instance-b"), &[(TOKEN_HEADER, &tb)]), [10, 0, 0, 3]);
        let a = call_from(&i, req("GET", &format!("{roles}isobench-r-instance-a"), &[]), [10, 0, 0, 2]);
        let key = |doc: &str| doc.split("\"AccessKeyId\" : ").nth(1).map(|r| r[..22].to_string()).unwrap();
        assert!(key(&b.1).starts_with("\"ASIA") && key(&a.1) != key(&b.1), "{} / {}", a.1, b.1);
        // Another instance's role path is not there for a.
        assert_eq!(call_from(&i, req("GET", &format!("{roles}isobench-r-instance-b"), &[]), [10, 0, 0, 2]).0, 404);
        assert_eq!(call_from(&i, req("GET", roles, &[]), [10, 0, 0, 9]).0, 403, "not an instance");
        i.deregister([10, 0, 0, 3].into());
        assert_eq!(call_from(&i, req("GET", roles, &[(TOKEN_HEADER, &tb)]), [10, 0, 0, 3]).0, 403);
        assert_eq!(i.tokens.lock().unwrap().len(), 1, "b's token is gone with it");
    }

    /// Three network namespaces: caller (a pod) -- router (a node, forwarding) -- server (IMDS),
    /// made with `ip netns`, deleted on drop (with their veth pairs).
    struct Topology {
        names: [String; 3],
    }

    impl Topology {
        const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);

        fn new() -> Topology {
            let tag = format!("ibhop{}", std::process::id());
            let t = Topology { names: ["c", "r", "s"].map(|n| format!("{tag}{n}")) };
            let [c, r, s] = &t.names;
            let ip = |args: &str| {
                let out = std::process::Command::new("ip").args(args.split(' ')).output().unwrap();
                assert!(out.status.success(), "ip {args}: {}", String::from_utf8_lossy(&out.stderr));
            };
            for n in &t.names {
                ip(&format!("netns add {n}"));
                ip(&format!("-n {n} link set lo up"));
            }
            ip(&format!("-n {c} link add {tag}a type veth peer name {tag}b netns {r}"));
            ip(&format!("-n {r} link add {tag}c type veth peer name {tag}d netns {s}"));
            for (ns, dev, addr) in
                [(c, "a", "10.77.1.2/24"), (r, "b", "10.77.1.1/24"), (r, "c", "10.77.2.1/24"), (s, "d", "10.77.2.2/24")]
            {
                ip(&format!("-n {ns} addr add {addr} dev {tag}{dev}"));
                ip(&format!("-n {ns} link set {tag}{dev} up"));
            }
            ip(&format!("-n {c} route add default via 10.77.1.1"));
            ip(&format!("-n {s} route add default via 10.77.2.1"));
            // The router's own sysctl (per namespace).
            ip(&format!("netns exec {r} sysctl -qw net.ipv4.ip_forward=1"));
            t
        }

        /// Runs `f` on a thread inside namespace `i` (0 caller, 1 router, 2 server).
        fn run<R: Send + 'static>(&self, i: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
            let path = format!("/run/netns/{}", self.names[i]);
            std::thread::spawn(move || {
                crate::netns::enter(std::fs::File::open(&path).unwrap()).unwrap();
                f()
            })
            .join()
            .unwrap()
        }
    }

    impl Drop for Topology {
        fn drop(&mut self) {
            for n in &self.names {
                let _ = std::process::Command::new("ip").args(["netns", "del", n]).status();
            }
        }
    }

    /// One request from inside namespace `from`: the status, or `None` if no answer came.
    fn exchange(t: &Topology, from: usize, request: &'static str) -> Option<u16> {
        t.run(from, move || {
            use std::io::{Read, Write};
            let addr = SocketAddr::from((Topology::SERVER, 8080));
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(n) if n > 12 => std::str::from_utf8(&buf[9..12]).ok()?.parse().ok(),
                _ => None,
            }
        })
    }

    #[test]
    fn a_hop_limit_of_1_drops_the_token_answer_one_router_away() {
        isobench_testkit::needs_root!();
        let t = Topology::new();
        const PUT: &str = "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n";
        const GET: &str = "GET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n";
        for hop_limit in [1, 2] {
            let mut id = identity("i-hop", [10, 77, 2, 2], "isobench-r-node", false);
            id.hop_limit = Some(hop_limit);
            let listener = t.run(2, || std::net::TcpListener::bind((Topology::SERVER, 8080)).unwrap());
            let server = super::super::http::Server::start("imds-hop", listener, Arc::new(Imds::new(id))).unwrap();
            // The node itself (the router, one hop) always gets a token.
            assert_eq!(exchange(&t, 1, PUT), Some(200), "hop limit {hop_limit}, from the node");
            let from_pod = exchange(&t, 0, PUT);
            if hop_limit == 1 {
                assert_eq!(from_pod, None, "the token answer must die at the router");
                // IMDSv1 is not hop-limited, as on AWS.
                assert_eq!(exchange(&t, 0, GET), Some(200));
            } else {
                assert_eq!(from_pod, Some(200), "two hops reach a pod behind the node");
            }
            server.stop();
        }
    }
}
