//! The freeze point: Lambda freezes an environment once the runtime and every extension wait in
//! their next call, and bills from hand-over to that point (ext guide: "the Invoke phase
//! continues until all extensions signal that they are completed"; `PostRuntimeExecutionDuration`
//! measures "between the runtime `Next` API request and the last extension `Next` API request").

use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_rapi::{Invocation, InvokeError, InvokeOutcome, ParkError, RuntimeApi, headers};
use tokio::task::JoinHandle;

use crate::util::{Client, Ext, NEXT, config, response_path, start, still_pending};

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(150);

fn spawn_invoke(api: &Arc<RuntimeApi>, inv: Invocation) -> JoinHandle<Result<InvokeOutcome, InvokeError>> {
    let api = api.clone();
    tokio::spawn(async move { api.invoke(inv).await })
}

fn spawn_parked(api: &Arc<RuntimeApi>) -> JoinHandle<Result<Instant, ParkError>> {
    let api = api.clone();
    tokio::spawn(async move { api.wait_parked().await })
}

#[tokio::test]
async fn billing_runs_to_the_park_and_includes_post_response_work() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    let _init = rt_first_next(&api).await;
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("r1"));
    rt.get(NEXT).await;
    rt.post(&response_path("r1"), "done").await.assert_accepted();
    // The caller hears the result at once, without waiting for the post-response work.
    let InvokeOutcome::Ok { timing, .. } = inv.await.unwrap().unwrap() else { panic!("expected Ok") };
    let mut parked = spawn_parked(&api);
    // The runtime keeps working after its response (flushing, say) before asking for more.
    assert!(still_pending(&mut parked, Duration::from_millis(60)).await, "parked before the runtime asked again");
    let asked = Instant::now();
    let _next = rt.spawn_get(NEXT, &[]);
    let at = parked.await.unwrap().expect("parked");
    assert!(at >= asked, "the freeze point precedes the runtime's /next");
    assert!(timing.completed <= at);
    let billed = timing.billed_ms_until(at);
    assert!(billed >= 60, "post-response work not billed: {billed} ms");
    assert!(billed > timing.billed_ms(), "{billed} vs {}", timing.billed_ms());
    // Already parked: resolves at once with the same instant.
    assert_eq!(api.wait_parked().await, Ok(at));
    assert_eq!(api.parked_since(), Ok(Some(at)));
}

/// INIT without extensions: the first `/next` parks (on a task), and INIT is over.
async fn rt_first_next(api: &Arc<RuntimeApi>) -> JoinHandle<(Client, crate::util::Reply)> {
    let t = Client::connect(api.local_addr()).await.spawn_get(NEXT, &[]);
    api.wait_init(Duration::from_secs(5)).await.expect("init");
    assert!(api.wait_parked().await.is_ok(), "parked after INIT");
    t
}

#[tokio::test]
async fn wait_parked_waits_for_an_extension_still_post_processing() {
    let api = start(config(false));
    let ext = Ext::register(api.local_addr(), "post-processor", &["INVOKE"]).await;
    let ext_next = ext.next();
    let first = Client::connect(api.local_addr()).await.spawn_get(NEXT, &[]);
    api.wait_init(Duration::from_secs(5)).await.unwrap();
    let init_park = api.wait_parked().await.expect("parked after INIT");

    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("r1"));
    let (ext, ev) = ext_next.await.unwrap();
    assert_eq!(ev.json()["requestId"], "r1");
    let (mut rt2, next) = first.await.unwrap();
    assert_eq!(next.header(headers::REQUEST_ID), Some("r1"));
    rt2.post(&response_path("r1"), "done").await.assert_accepted();
    let InvokeOutcome::Ok { timing, .. } = inv.await.unwrap().unwrap() else { panic!("expected Ok") };
    assert!(timing.handed_over > init_park);
    // The runtime is back in /next, the extension still works on the invoke.
    let _rt_next = rt2.spawn_get(NEXT, &[]);
    let mut parked = spawn_parked(&api);
    assert!(still_pending(&mut parked, SHORT).await, "parked while the extension was still post-processing");
    assert_eq!(api.parked_since(), Ok(None));
    let ext_asked = Instant::now();
    let _ext_again = ext.next();
    let at = parked.await.unwrap().expect("parked once the extension asked");
    assert!(at >= ext_asked, "the freeze point is the last extension's next");
    assert!(timing.billed_ms_until(at) >= 150, "{}", timing.billed_ms_until(at));
}

#[tokio::test]
async fn an_invoke_before_the_park_waits_for_it() {
    let api = start(config(false));
    let ext = Ext::register(api.local_addr(), "slow-ext", &["INVOKE"]).await;
    let ext_next = ext.next();
    let rt = Client::connect(api.local_addr()).await;
    let first = rt.spawn_get(NEXT, &[]);
    api.wait_init(Duration::from_secs(5)).await.unwrap();
    let a = spawn_invoke(&api, Invocation::new("a", LONG).with_request_id("a"));
    let (mut rt, _) = first.await.unwrap();
    let (ext, _) = ext_next.await.unwrap();
    rt.post(&response_path("a"), "done").await.assert_accepted();
    assert!(matches!(a.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));
    // Not refused (documented choice): queued until the environment parks.
    let b = spawn_invoke(&api, Invocation::new("b", LONG).with_request_id("b"));
    let mut rt_next = rt.spawn_get(NEXT, &[]);
    assert!(still_pending(&mut rt_next, SHORT).await, "handed over while an extension was still busy");
    // A third is refused while the second waits.
    let r = api.invoke(Invocation::new("c", LONG)).await;
    assert!(matches!(&r, Err(InvokeError::Busy { in_flight }) if in_flight == "b"), "{r:?}");
    let ext_next = ext.next();
    let (mut rt, next) = rt_next.await.unwrap();
    assert_eq!(next.header(headers::REQUEST_ID), Some("b"));
    let (_ext, ev) = ext_next.await.unwrap();
    assert_eq!(ev.json()["requestId"], "b");
    rt.post(&response_path("b"), "done").await.assert_accepted();
    assert!(matches!(b.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));
}

#[tokio::test]
async fn wait_parked_fails_when_the_environment_cannot_park() {
    // The process dies during post-response work.
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    let _init = rt_first_next(&api).await;
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("r"));
    rt.get(NEXT).await;
    rt.post(&response_path("r"), "ok").await.assert_accepted();
    inv.await.unwrap().unwrap();
    let parked = spawn_parked(&api);
    tokio::task::yield_now().await;
    api.environment_died();
    assert_eq!(parked.await.unwrap(), Err(ParkError::EnvironmentGone));

    // The invocation times out.
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    let _init = rt_first_next(&api).await;
    let inv = spawn_invoke(&api, Invocation::new("{}", Duration::from_millis(100)));
    rt.get(NEXT).await;
    let parked = spawn_parked(&api);
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::Timeout { .. }));
    assert_eq!(parked.await.unwrap(), Err(ParkError::TimedOut));

    // The server shuts down.
    let api = start(config(false));
    let parked = spawn_parked(&api);
    tokio::task::yield_now().await;
    api.shutdown().await;
    assert_eq!(parked.await.unwrap(), Err(ParkError::ShutDown));
}
