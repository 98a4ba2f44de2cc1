//! A function that is not the sample workload, run by the Rust `lambda_runtime` crate (AWS's
//! runtime client, not this project's): it answers
//! `{"event": <the event>, "tenant_id": <the invoke's tenant id or null>, "request_id": ...}`,
//! which is no `{"status": ...}` document, and fails with a function error (`/error`,
//! `errorType` `EchoFailure`) when the event is `{"fail": true}`. The harness's bring-your-own
//! tests deploy it as a tier's `code`.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    if payload.get("fail") == Some(&Value::Bool(true)) {
        return Err(Diagnostic { error_type: "EchoFailure".into(), error_message: "asked to fail".into() });
    }
    Ok(json!({ "event": payload, "tenant_id": context.tenant_id, "request_id": context.request_id }))
}

// Current-thread: lambda_runtime sets `_X_AMZN_TRACE_ID` per invocation with `set_var`.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(echo)).await
}
