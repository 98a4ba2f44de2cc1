//! Projected Kubernetes service-account tokens, as an EKS cluster's API server issues them: JWTs
//! whose `iss` is the cluster's OIDC issuer URL, `sub` is `system:serviceaccount:<ns>:<sa>`,
//! `aud` the audience the projection asks for (`sts.amazonaws.com` for IRSA,
//! `pods.eks.amazonaws.com` for EKS Pod Identity), with `iat`, `nbf`, `exp` and the
//! `kubernetes.io` claim naming namespace and service account.
//!
//! Reduced fidelity: EKS signs with RS256 and publishes the public key at the issuer's
//! `/.well-known/openid-configuration` and JWKS; here each cluster signs with HS256 under a
//! random 256-bit secret that only the harness holds, and the verifiers (the emulated STS and
//! Pod Identity agent) are handed the issuer directly, with no discovery. A pod can still
//! neither forge nor alter a token, which is what the isolation depends on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{REGION, random_bytes, random_hex};

/// The audience of an IRSA token (`AWS_WEB_IDENTITY_TOKEN_FILE`).
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";
/// The audience of an EKS Pod Identity token (`AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`).
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";
/// How long minted tokens live (the projections' `expirationSeconds` of 86400; the kubelet
/// would refresh them, a run never outlives them).
pub const TOKEN_TTL: Duration = Duration::from_secs(86_400);

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token was not issued by this cluster")]
    WrongIssuer,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is expired")]
    Expired,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub issuer: String,
    /// `system:serviceaccount:<ns>:<sa>`.
    pub subject: String,
    pub audiences: Vec<String>,
    pub namespace: String,
    pub service_account: String,
    /// Seconds since the epoch.
    pub expires: u64,
}

/// One cluster's token issuer: its OIDC issuer URL and signing secret.
pub struct ServiceAccountIssuer {
    issuer: String,
    key: Vec<u8>,
    kid: String,
}

impl std::fmt::Debug for ServiceAccountIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ServiceAccountIssuer").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// `system:serviceaccount:<ns>:<sa>`, the subject of a service account's tokens.
pub fn subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl ServiceAccountIssuer {
    /// A fresh issuer with a random secret and an issuer URL shaped like EKS's
    /// (`https://oidc.eks.<region>.amazonaws.com/id/<32 hex digits>`).
    pub fn new() -> ServiceAccountIssuer {
        let id = random_hex(16).to_ascii_uppercase();
        ServiceAccountIssuer {
            issuer: format!("https://oidc.eks.{REGION}.amazonaws.com/id/{id}"),
            key: random_bytes(32),
            kid: random_hex(20),
        }
    }

    /// The issuer URL (`iss`), which IAM's OIDC provider for the cluster is named after.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A token for `namespace`/`service_account` with audience `audience`, valid for
    /// [`TOKEN_TTL`] from now.
    pub fn mint(&self, namespace: &str, service_account: &str, audience: &str) -> String {
        self.mint_at(namespace, service_account, audience, now_secs())
    }

    fn mint_at(&self, namespace: &str, service_account: &str, audience: &str, iat: u64) -> String {
        let header = json!({"alg": "HS256", "kid": self.kid, "typ": "JWT"});
        let claims = json!({
            "aud": [audience],
            "exp": iat + TOKEN_TTL.as_secs(),
            "iat": iat,
            "iss": self.issuer,
            "jti": super::uuid4(),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": service_account, "uid": super::uuid4()},
            },
            "nbf": iat,
            "sub": subject(namespace, service_account),
        });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = hmac_sha256(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The claims of `token` if this issuer signed it and it has not expired.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, now_secs())
    }

    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let (header, claims, sig) = split(token)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(TokenError::BadSignature);
        }
        let claims_issuer = claims.get("iss").and_then(Value::as_str).ok_or(TokenError::Malformed)?;
        if claims_issuer != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        let signing_input = &token[..token.rfind('.').ok_or(TokenError::Malformed)?];
        if !constant_time_eq(&hmac_sha256(&self.key, signing_input.as_bytes()), &sig) {
            return Err(TokenError::BadSignature);
        }
        let expires = claims.get("exp").and_then(Value::as_u64).ok_or(TokenError::Malformed)?;
        let not_before = claims.get("nbf").and_then(Value::as_u64).unwrap_or(0);
        if now >= expires || now + 60 < not_before {
            return Err(TokenError::Expired);
        }
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned).ok_or(TokenError::Malformed);
        let audiences = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => return Err(TokenError::Malformed),
        };
        let k8s = claims.get("kubernetes.io");
        Ok(Claims {
            issuer: claims_issuer.to_owned(),
            subject: text(claims.get("sub"))?,
            audiences,
            namespace: text(k8s.and_then(|k| k.get("namespace")))?,
            service_account: text(k8s.and_then(|k| k.pointer("/serviceaccount/name")))?,
            expires,
        })
    }
}

impl Default for ServiceAccountIssuer {
    fn default() -> Self {
        ServiceAccountIssuer::new()
    }
}

/// A JWT's header and claims (parsed) and signature (decoded).
fn split(token: &str) -> Result<(Value, Value, Vec<u8>), TokenError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [h, c, s] = parts[..] else { return Err(TokenError::Malformed) };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed);
    let json = |b: Vec<u8>| serde_json::from_slice::<Value>(&b).map_err(|_| TokenError::Malformed);
    Ok((json(decode(h)?)?, json(decode(c)?)?, decode(s)?))
}

/// HMAC-SHA256 (RFC 2104), by hand over `sha2`: the `hmac` crate in the lock file is a
/// version for another `digest` generation than the workspace's `sha2`.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 2 and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn minted_tokens_verify_and_say_who() {
        let iss = ServiceAccountIssuer::new();
        assert!(iss.issuer().starts_with("https://oidc.eks.us-east-1.amazonaws.com/id/"));
        let t = iss.mint("tenant-a", "tenant-a", STS_AUDIENCE);
        let c = iss.verify(&t).unwrap();
        assert_eq!(c.subject, "system:serviceaccount:tenant-a:tenant-a");
        assert_eq!((c.namespace.as_str(), c.service_account.as_str()), ("tenant-a", "tenant-a"));
        assert_eq!(c.audiences, [STS_AUDIENCE]);
        assert_eq!(c.issuer, iss.issuer());
        assert!(!format!("{iss:?}").contains("key"));
    }

    #[test]
    fn forged_altered_foreign_and_expired_tokens_are_refused() {
        let (iss, other) = (ServiceAccountIssuer::new(), ServiceAccountIssuer::new());
        let t = iss.mint("a", "sa", STS_AUDIENCE);
        // Another subject with the original signature.
        let parts: Vec<&str> = t.split('.').collect();
        let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = json!("system:serviceaccount:b:sa");
        let altered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
        assert_eq!(iss.verify(&altered), Err(TokenError::BadSignature));
        // The same claims under another cluster's key: not ours.
        assert_eq!(iss.verify(&other.mint("a", "sa", STS_AUDIENCE)), Err(TokenError::WrongIssuer));
        // Another cluster's token claiming our issuer: its signature is not ours.
        let forged = other.mint("a", "sa", STS_AUDIENCE);
        let fp: Vec<&str> = forged.split('.').collect();
        let mut fc: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(fp[1]).unwrap()).unwrap();
        fc["iss"] = json!(iss.issuer());
        let forged = format!("{}.{}.{}", fp[0], URL_SAFE_NO_PAD.encode(fc.to_string()), fp[2]);
        assert_eq!(iss.verify(&forged), Err(TokenError::BadSignature));
        let old = iss.mint_at("a", "sa", STS_AUDIENCE, 1_000);
        assert_eq!(iss.verify_at(&old, 1_000 + TOKEN_TTL.as_secs()), Err(TokenError::Expired));
        assert!(iss.verify_at(&old, 1_000 + TOKEN_TTL.as_secs() - 1).is_ok());
        for bad in ["", "a.b", "a.b.c", "x.y.z.w"] {
            assert_eq!(iss.verify(bad), Err(TokenError::Malformed), "{bad}");
        }
    }
}
