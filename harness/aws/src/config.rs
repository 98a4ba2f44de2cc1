//! Credentials, region and endpoints the way AWS users expect: the SDK's default chain
//! (environment, profiles, SSO, instance roles), `--profile` and `--region` on top, and endpoint
//! overrides from `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_<SERVICE>` variables
//! (read by the SDK itself), so LocalStack and moto can serve different services of one run.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::api::Apis;
use crate::sdk;

/// What the command line adds to the SDK's default chain.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    /// `--region`, else the scenario's `[aws] region`, else the chain's.
    pub region: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no AWS region: pass --region, set `region` in the scenario's [aws] section, or set AWS_REGION \
         (or a region in the profile)"
    )]
    NoRegion,
}

/// Loads the shared configuration from the default chain with the options on top.
pub async fn load(opts: &AwsOptions) -> Result<SdkConfig, ConfigError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &opts.region {
        loader = loader.region(Region::new(r.clone()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(ConfigError::NoRegion);
    }
    Ok(config)
}

/// Who the credentials belong to (STS `GetCallerIdentity`): checks them before anything is
/// created, and names the account in the summary.
pub async fn caller_account(config: &SdkConfig) -> Result<String, String> {
    let out = aws_sdk_sts::Client::new(config).get_caller_identity().send().await.map_err(|e| {
        format!(
            "the AWS credentials do not work (STS GetCallerIdentity failed: {}); check the profile, \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or `aws sso login`",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        )
    })?;
    Ok(out.account().unwrap_or("unknown").to_string())
}

/// Whether S3 has an endpoint override: emulators serve buckets by path, not by host name.
fn s3_overridden() -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// The SDK clients of every service the backend uses.
pub fn apis(config: &SdkConfig) -> Apis {
    apis_with(config, s3_overridden())
}

/// The clients, with S3 addressing buckets by path (`path_style`) or by host name.
pub fn apis_with(config: &SdkConfig, path_style: bool) -> Apis {
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
    Apis {
        ec2: Arc::new(sdk::Ec2 { client: aws_sdk_ec2::Client::new(config) }),
        iam: Arc::new(sdk::Iam { client: aws_sdk_iam::Client::new(config) }),
        s3: Arc::new(sdk::S3 {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
        }),
        lambda: Arc::new(sdk::Lambda { client: aws_sdk_lambda::Client::new(config) }),
        ecs: Arc::new(sdk::Ecs { client: aws_sdk_ecs::Client::new(config) }),
        eks: Arc::new(sdk::Eks { client: aws_sdk_eks::Client::new(config), config: config.clone() }),
    }
}

/// The endpoint a service's requests go to, as the SDK resolves overrides: the service's own
/// variable, then the global one; `None` for the real AWS endpoint.
pub fn endpoint_override(service_env: &str) -> Option<String> {
    [format!("AWS_ENDPOINT_URL_{service_env}"), "AWS_ENDPOINT_URL".to_string()]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
}
