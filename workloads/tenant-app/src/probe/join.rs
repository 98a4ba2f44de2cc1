//! Running a sweep's fetches (`net` peers, `cred` paths) side by side while keeping their order.

use std::future::Future;

/// Runs the futures concurrently and returns their outputs in the given order (`None` for one
/// that panicked).
pub(crate) async fn join_ordered<F>(futures: Vec<F>) -> Vec<Option<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut set = tokio::task::JoinSet::new();
    for (i, future) in futures.into_iter().enumerate() {
        set.spawn(async move { (i, future.await) });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok((i, output)) = joined {
            outputs[i] = Some(output);
        }
    }
    outputs
}
