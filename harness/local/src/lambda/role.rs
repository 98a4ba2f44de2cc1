//! A function's execution role and the temporary credentials Lambda hands its environments
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
//!
//! They are fake but well-formed: an access key id in the shape of a temporary (STS) key
//! (`ASIA` and 16 characters of base32), a 40-character secret, and a session token that
//! carries the role's ARN (base64 of a small JSON document), so a probe that finds credentials
//! can tell whose principal they are. Each function gets its own, random; every environment of
//! one function gets the same, as every environment of a real function assumes the same role.

use std::io::Read;

/// A function's execution role and its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRole {
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// The account every emulated ARN names.
pub(crate) const ACCOUNT: &str = "000000000000";

impl FunctionRole {
    /// A fresh role for function `function` of run `run_id`.
    pub(crate) fn new(run_id: &str, function: &str) -> FunctionRole {
        let role_name: String = format!("isobench-{function}").chars().take(64).collect();
        let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/{role_name}");
        let bytes = random::<48>();
        const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let access_key_id: String =
            "ASIA".chars().chain(bytes[..16].iter().map(|b| BASE32[usize::from(b % 32)] as char)).collect();
        let secret_access_key: String = bytes[8..48].iter().map(|b| SECRET[usize::from(b % 64)] as char).collect();
        let nonce: String = random::<16>().iter().map(|b| format!("{b:02x}")).collect();
        let doc = format!(
            r#"{{"role_arn":"{role_arn}","session":"{function}","run":"{}","nonce":"{nonce}"}}"#,
            run_id.replace('"', "")
        );
        FunctionRole { role_arn, access_key_id, secret_access_key, session_token: base64(doc.as_bytes()) }
    }

    /// The three standard variables.
    pub(crate) fn env(&self) -> [(String, String); 3] {
        [
            ("AWS_ACCESS_KEY_ID".into(), self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_access_key.clone()),
            ("AWS_SESSION_TOKEN".into(), self.session_token.clone()),
        ]
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        // Not secret material; only needs to differ between functions.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    b
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_well_formed_and_distinct_per_function() {
        let a = FunctionRole::new("run-1", "lambda-shared");
        let b = FunctionRole::new("run-1", "lambda-per-tenant-t1");
        assert_eq!(a.role_arn, "arn:aws:iam::000000000000:role/isobench-lambda-shared");
        assert!(a.access_key_id.starts_with("ASIA") && a.access_key_id.len() == 20, "{}", a.access_key_id);
        assert!(a.access_key_id[4..].bytes().all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)));
        assert_eq!(a.secret_access_key.len(), 40);
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.session_token, b.session_token);
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
