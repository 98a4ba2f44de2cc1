//! `rng`: uniqueness of random state across environments. Nothing is planted; a sweep reports
//! the first 16 bytes this process drew from its random number generator at start-up
//! ([`Identity::first_random`], drawn from the thread RNG before anything else in
//! [`crate::handler::State::new`]). Two environments reporting the same bytes were cloned from
//! one snapshot taken after the RNG was seeded (as a restored Lambda SnapStart snapshot would
//! be), so their "random" tokens, nonces and keys repeat; the harness compares them across
//! tenants' environments. Nothing is ever found.

use serde_json::{Value, json};

use crate::compute::hex;
use crate::identity::Identity;

/// The sweep's detail: `{"first_random": "<32 hex digits>"}`.
pub fn sweep(identity: &Identity) -> Value {
    json!({ "first_random": hex(&identity.first_random) })
}
