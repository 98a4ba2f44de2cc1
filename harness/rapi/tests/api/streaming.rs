//! Streamed responses, written on a raw socket so the chunks, their timing and the trailers are
//! exactly what the streaming guide describes: `Lambda-Runtime-Function-Response-Mode: streaming`,
//! `Transfer-Encoding: chunked`, and mid-stream errors as `Lambda-Runtime-Function-Error-Type` /
//! `Lambda-Runtime-Function-Error-Body` (base64) trailers.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use isobench_rapi::{Invocation, InvokeError, InvokeOutcome, RuntimeApi, error_types, headers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::util::{Client, NEXT, config, response_path, start};

const LONG: Duration = Duration::from_secs(30);

fn spawn_invoke(api: &Arc<RuntimeApi>, id: &str) -> JoinHandle<Result<InvokeOutcome, InvokeError>> {
    let api = api.clone();
    let inv = Invocation::new("{}", LONG).with_request_id(id);
    tokio::spawn(async move { api.invoke(inv).await })
}

/// Open a streamed `/response` for `id`: the head, with the declared trailers.
async fn open_stream(api: &RuntimeApi, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(api.local_addr()).await.unwrap();
    s.set_nodelay(true).unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\n{}: streaming\r\nTransfer-Encoding: chunked\r\n\
         Trailer: {}\r\nTrailer: {}\r\n\r\n",
        response_path(id),
        headers::FUNCTION_RESPONSE_MODE,
        headers::FUNCTION_ERROR_TYPE,
        headers::FUNCTION_ERROR_BODY,
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

async fn chunk(s: &mut TcpStream, data: &[u8]) {
    s.write_all(format!("{:x}\r\n", data.len()).as_bytes()).await.unwrap();
    s.write_all(data).await.unwrap();
    s.write_all(b"\r\n").await.unwrap();
}

/// The last chunk, with `trailers` (`Name: value` lines), and the status of the answer.
async fn finish(mut s: TcpStream, trailers: &[(&str, &str)]) -> u16 {
    let mut end = String::from("0\r\n");
    for (k, v) in trailers {
        end.push_str(&format!("{k}: {v}\r\n"));
    }
    end.push_str("\r\n");
    s.write_all(end.as_bytes()).await.unwrap();
    status(&mut s).await
}

async fn status(s: &mut TcpStream) -> u16 {
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

async fn handed_over(api: &Arc<RuntimeApi>, id: &str) -> (JoinHandle<Result<InvokeOutcome, InvokeError>>, Client) {
    let inv = spawn_invoke(api, id);
    let mut rt = Client::connect(api.local_addr()).await;
    assert_eq!(rt.get(NEXT).await.status, 200);
    (inv, rt)
}

#[tokio::test]
async fn a_streamed_response_records_its_first_byte_before_completion() {
    let api = start(config(false));
    let (inv, _rt) = handed_over(&api, "s1").await;
    let mut s = open_stream(&api, "s1").await;
    chunk(&mut s, b"hello ").await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    chunk(&mut s, b"world").await;
    assert_eq!(finish(s, &[]).await, 202);
    match inv.await.unwrap().unwrap() {
        InvokeOutcome::Ok { payload, timing } => {
            assert_eq!(payload, "hello world");
            assert!(timing.streamed);
            assert!(timing.first_byte >= timing.handed_over);
            let gap = timing.completed.duration_since(timing.first_byte);
            assert!(gap >= Duration::from_millis(70), "first byte {gap:?} before completion");
            assert!(timing.time_to_first_byte() < timing.duration());
        }
        other => panic!("expected Ok, got {other:?}"),
    }

    // Buffered: first byte = completed, not streamed.
    let (inv, mut rt) = handed_over(&api, "b1").await;
    rt.post(&response_path("b1"), "buffered").await.assert_accepted();
    let outcome = inv.await.unwrap().unwrap();
    assert!(!outcome.streamed());
    let t = outcome.timing().copied().unwrap();
    assert_eq!(t.first_byte, t.completed);
}

#[tokio::test]
async fn an_error_trailer_turns_a_streamed_200_into_a_function_error() {
    let api = start(config(false));
    let (inv, _rt) = handed_over(&api, "e1").await;
    let mut s = open_stream(&api, "e1").await;
    chunk(&mut s, b"{\"partial\":").await;
    let err = r#"{"errorMessage":"upstream closed","errorType":"StreamBroke"}"#;
    let b64 = base64::engine::general_purpose::STANDARD.encode(err);
    let st =
        finish(s, &[(headers::FUNCTION_ERROR_TYPE, "Runtime.StreamError"), (headers::FUNCTION_ERROR_BODY, &b64)]).await;
    assert_eq!(st, 202, "the runtime's post itself is accepted");
    match inv.await.unwrap().unwrap() {
        InvokeOutcome::FunctionError { error_type, error_type_header, body, timing } => {
            assert_eq!(error_type, "StreamBroke");
            assert_eq!(error_type_header.as_deref(), Some("Runtime.StreamError"));
            assert_eq!(body, err, "the base64 trailer is decoded");
            assert!(timing.streamed);
        }
        other => panic!("expected a function error, got {other:?}"),
    }

    // A plain-text error body (what `lambda_runtime` sends): the trailer's type names it.
    let (inv, _rt) = handed_over(&api, "e2").await;
    let mut s = open_stream(&api, "e2").await;
    chunk(&mut s, b"data").await;
    let b64 = base64::engine::general_purpose::STANDARD.encode("connection reset");
    finish(s, &[(headers::FUNCTION_ERROR_TYPE, "Runtime.StreamError"), (headers::FUNCTION_ERROR_BODY, &b64)]).await;
    assert!(matches!(
        inv.await.unwrap().unwrap(),
        InvokeOutcome::FunctionError { error_type, body, .. }
            if error_type == "Runtime.StreamError" && body == "connection reset"
    ));
}

#[tokio::test]
async fn streamed_responses_have_their_own_limit() {
    let mut cfg = config(false);
    cfg.max_response_bytes = 100;
    cfg.max_streamed_response_bytes = 1000;
    let api = start(cfg);

    // Over the buffered limit, within the streamed one.
    let (inv, _rt) = handed_over(&api, "ok").await;
    let mut s = open_stream(&api, "ok").await;
    for _ in 0..8 {
        chunk(&mut s, &[b'x'; 100]).await;
    }
    assert_eq!(finish(s, &[]).await, 202);
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::Ok { payload, .. } if payload.len() == 800));

    // Over the streamed limit: 413 to the runtime, `Function.ResponseSizeTooLarge` to the caller.
    let (inv, _rt) = handed_over(&api, "big").await;
    let mut s = open_stream(&api, "big").await;
    for _ in 0..15 {
        chunk(&mut s, &[b'x'; 100]).await;
    }
    assert_eq!(status(&mut s).await, 413);
    match inv.await.unwrap().unwrap() {
        InvokeOutcome::FunctionError { error_type, body, timing, .. } => {
            assert_eq!(error_type, error_types::RESPONSE_SIZE_TOO_LARGE);
            assert!(String::from_utf8_lossy(&body).contains("1000 bytes"), "{body:?}");
            assert!(timing.streamed);
        }
        other => panic!("expected a function error, got {other:?}"),
    }
}

#[test]
fn the_default_streamed_limit_is_lambdas_200_mb() {
    assert_eq!(isobench_rapi::DEFAULT_MAX_STREAMED_RESPONSE_BYTES, 200 * 1024 * 1024);
    let c = config(false);
    assert_eq!(c.max_streamed_response_bytes, isobench_rapi::DEFAULT_MAX_STREAMED_RESPONSE_BYTES);
}
