//! Retry with exponential backoff for throttling and not-yet-settled dependencies. The SDK's own
//! retry covers throttling for a few attempts; deletes behind a detaching network interface and
//! creates behind a fresh IAM role need minutes, so the harness has its own, longer policy.

use std::future::Future;
use std::time::Duration;

use crate::error::{ApiError, ErrorKind};

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Give up once this much time was spent waiting.
    pub budget: Duration,
}

impl Backoff {
    pub const DEFAULT: Backoff =
        Backoff { first: Duration::from_millis(200), max: Duration::from_secs(10), budget: Duration::from_secs(300) };
}

/// Calls `op` until it succeeds, fails with an error that is not retryable, or the budget is spent.
pub async fn retry<T, F, Fut>(backoff: Backoff, mut op: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut wait = backoff.first;
    let mut waited = Duration::ZERO;
    loop {
        match op().await {
            Err(e) if matches!(e.kind, ErrorKind::Throttled | ErrorKind::NotReady) && waited < backoff.budget => {
                tracing::debug!("retrying in {wait:?} after {e}");
                tokio::time::sleep(wait).await;
                waited += wait;
                wait = (wait * 2).min(backoff.max);
            }
            other => return other,
        }
    }
}

/// A delete that counts "already gone" as done.
pub async fn delete<F, Fut>(backoff: Backoff, op: F) -> Result<(), ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ApiError>>,
{
    match retry(backoff, op).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const FAST: Backoff =
        Backoff { first: Duration::from_millis(1), max: Duration::from_millis(2), budget: Duration::from_millis(50) };

    #[tokio::test]
    async fn throttling_is_retried_until_success() {
        let calls = AtomicU32::new(0);
        let r = retry(FAST, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(ApiError::new("op", "Throttling", "slow down"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError::new("op", "AccessDenied", "no"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_budget_ends_retries() {
        let r: Result<(), _> =
            retry(FAST, || async { Err(ApiError::new("op", "DependencyViolation", "in use")) }).await;
        assert_eq!(r.unwrap_err().kind, ErrorKind::NotReady);
    }

    #[tokio::test]
    async fn deleting_what_is_gone_is_done() {
        assert!(delete(FAST, || async { Err(ApiError::new("op", "InvalidGroup.NotFound", "gone")) }).await.is_ok());
    }
}
