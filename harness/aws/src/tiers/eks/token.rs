//! The bearer token the EKS API server takes, made as `aws eks get-token` (and
//! aws-iam-authenticator) make it: an STS `GetCallerIdentity` URL presigned with SigV4 in its
//! query, the cluster's name in the signed header `x-k8s-aws-id`, base64url without padding,
//! prefixed `k8s-aws-v1.`. The API server calls the URL and maps the caller to its access entry.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;

pub const PREFIX: &str = "k8s-aws-v1.";
/// The header naming the cluster the token is for.
pub const CLUSTER_HEADER: &str = "x-k8s-aws-id";
/// How long the presigned URL is good for: the API server refuses tokens older than 15
/// minutes whatever this says; 60 s is what the CLI signs.
pub const EXPIRES: Duration = Duration::from_secs(60);

/// A token for `cluster` signed with `creds` in `region` at `now`.
pub fn token(creds: &Credentials, region: &str, cluster: &str, now: SystemTime) -> Result<String, String> {
    let host = format!("sts.{region}.amazonaws.com");
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let identity: Identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let headers = [("host", host.as_str()), (CLUSTER_HEADER, cluster)];
    let signable = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| format!("signable request: {e}"))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| format!("presign: {e}"))?.into_parts();
    let mut req = http::Request::builder().method("GET").uri(&url).body(()).map_err(|e| format!("request: {e}"))?;
    instructions.apply_to_request_http1x(&mut req);
    Ok(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(req.uri().to_string())))
}

/// The presigned URL inside a token (for tests and diagnostics).
pub fn url_of(token: &str) -> Option<String> {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.strip_prefix(PREFIX)?).ok()?;
    String::from_utf8(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_a_presigned_get_caller_identity_for_the_cluster() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "test");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t = token(&creds, "eu-west-1", "isobench-run-eks", now).unwrap();
        assert!(t.starts_with(PREFIX), "{t}");
        let encoded = &t[PREFIX.len()..];
        assert!(!encoded.contains('=') && !encoded.contains('+') && !encoded.contains('/'), "base64url, unpadded");
        let url = url_of(&t).unwrap();
        assert!(url.starts_with("https://sts.eu-west-1.amazonaws.com/?"), "{url}");
        for part in [
            "Action=GetCallerIdentity",
            "Version=2011-06-15",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20270115%2Feu-west-1%2Fsts%2Faws4_request",
            "X-Amz-Date=20270115T080000Z",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-Security-Token=session",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} missing in {url}");
        }
        // The signature covers the cluster's name: another cluster, another token.
        assert_ne!(t, token(&creds, "eu-west-1", "other", now).unwrap());
    }
}
