//! One error type for every SDK call, classified so that teardown and retry logic can be tested
//! without the SDK: already-gone is done, throttling and eventual consistency are retried.

/// What the caller may do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The resource does not exist (any more): for a delete, that is success.
    NotFound,
    /// Throttled by the service: retry with backoff.
    Throttled,
    /// A dependency not settled yet (a role not yet visible to Lambda or EC2, a network
    /// interface still detaching from a group): retry with backoff.
    NotReady,
    Other,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct ApiError {
    pub operation: &'static str,
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(operation: &'static str, code: impl Into<String>, message: impl Into<String>) -> ApiError {
        let code = code.into();
        let message = message.into();
        ApiError { operation, kind: classify(&code, &message), code, message }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Whether the endpoint does not implement the operation at all (an emulator: moto 4.2
    /// has no EKS Pod Identity or add-ons).
    pub fn is_unsupported(&self) -> bool {
        matches!(self.code.as_str(), "NotImplemented" | "UnknownOperationException" | "InvalidAction")
            || self.message.to_ascii_lowercase().contains("not yet implemented")
            // moto answers a route it lacks with an HTML 404 page and no error code; AWS's own
            // 404s carry one (ResourceNotFoundException).
            || (self.code == "Unknown" && self.message.contains("404 Not Found"))
    }
}

/// Maps a service error code (and, for a few codes that mean several things, its message) to
/// what the caller may do.
pub fn classify(code: &str, message: &str) -> ErrorKind {
    match code {
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "SlowDown"
        | "RequestThrottled"
        | "PriorRequestNotComplete" => ErrorKind::Throttled,
        "NoSuchEntity"
        | "NoSuchBucket"
        | "NoSuchKey"
        | "ResourceNotFoundException"
        | "ClusterNotFoundException"
        | "NoSuchTagSet" => ErrorKind::NotFound,
        c if c.ends_with(".NotFound") || c.ends_with(".Malformed") && message.contains("does not exist") => {
            ErrorKind::NotFound
        }
        "DependencyViolation" | "IncorrectInstanceState" | "ResourceInUseException" => ErrorKind::NotReady,
        // A role or instance profile created a moment ago is not yet visible to Lambda or EC2.
        // EKS: "Role ... cannot be assumed" / "is not authorized to perform sts:AssumeRole" alike.
        "InvalidParameterValueException" | "InvalidParameterValue" | "InvalidParameterException"
            if message.contains("cannot be assumed")
                || message.contains("Instance Profile")
                || message.contains("sts:AssumeRole") =>
        {
            ErrorKind::NotReady
        }
        "ClientException" | "InvalidParameterException" if message.contains("not found") => ErrorKind::NotFound,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(classify("InvalidVpcID.NotFound", ""), ErrorKind::NotFound);
        assert_eq!(classify("InvalidGroup.NotFound", ""), ErrorKind::NotFound);
        assert_eq!(classify("NoSuchEntity", ""), ErrorKind::NotFound);
        assert_eq!(classify("RequestLimitExceeded", ""), ErrorKind::Throttled);
        assert_eq!(classify("DependencyViolation", ""), ErrorKind::NotReady);
        assert_eq!(
            classify(
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda."
            ),
            ErrorKind::NotReady
        );
        assert_eq!(classify("InvalidParameterValueException", "Unsupported runtime"), ErrorKind::Other);
        assert_eq!(classify("AccessDenied", ""), ErrorKind::Other);
        assert_eq!(
            classify("InvalidParameterException", "Role arn:aws:iam::1:role/x cannot be assumed"),
            ErrorKind::NotReady
        );
    }

    #[test]
    fn an_operation_the_endpoint_lacks_is_told_apart() {
        let html = "unhandled error: ... status: StatusCode(404) ... <title>404 Not Found</title>";
        assert!(ApiError::new("CreateAddon", "Unknown", html).is_unsupported());
        assert!(ApiError::new("X", "NotImplemented", "").is_unsupported());
        assert!(!ApiError::new("DescribeCluster", "ResourceNotFoundException", "404 Not Found").is_unsupported());
        assert!(!ApiError::new("CreateAddon", "Unknown", "connection reset").is_unsupported());
    }
}
