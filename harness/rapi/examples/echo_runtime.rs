//! A Lambda function built on the real `lambda_runtime` crate, for the integration tests: it
//! echoes the event together with what its `Context` saw (request id, deadline, ARN, trace id,
//! tenant id, function config). An event `{"fail": true}` makes it return a typed error.
//!
//! Run it with the standard Lambda environment (`AWS_LAMBDA_RUNTIME_API` and friends, see
//! `FunctionConfig::runtime_env`).

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, ctx) = event.into_parts();
    if payload.get("fail").and_then(Value::as_bool) == Some(true) {
        return Err(Diagnostic { error_type: "EchoFailure".into(), error_message: "asked to fail".into() });
    }
    Ok(json!({
        "echo": payload,
        "request_id": ctx.request_id,
        "deadline_ms": ctx.deadline,
        "invoked_function_arn": ctx.invoked_function_arn,
        "xray_trace_id": ctx.xray_trace_id,
        "tenant_id": ctx.tenant_id,
        "function_name": ctx.env_config.function_name,
        "memory_mb": ctx.env_config.memory,
        "pid": std::process::id(),
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(handler)).await
}
