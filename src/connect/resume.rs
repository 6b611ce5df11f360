//! Resuming a Session Manager session whose WebSocket was lost (`ssm:ResumeSession`):
//! what the data channel calls to get a new token for the same session.
//!
//! The SDK client resolves credentials on every call, so a session that outlives its
//! first credentials (SSO, an assumed role's hour) resumes with fresh ones, as any other
//! call would. Whether a failure is worth another try is the API's answer: a session
//! that no longer exists (terminated, timed out, its task gone) or a caller who may not
//! resume it is final, and said in so many words; throttling and transport failures are
//! retried by the channel within its window.

use std::future::Future;
use std::pin::Pin;

use crate::aws::ApiError;
use crate::ssm::channel::{Resume, ResumeError, Resumed};

/// Resumes one session with the caller's SSM client.
pub struct SessionResume {
    pub ssm: aws_sdk_ssm::Client,
    pub session_id: String,
}

impl Resume for SessionResume {
    fn resume(&self) -> Pin<Box<dyn Future<Output = Result<Resumed, ResumeError>> + Send>> {
        let (ssm, id) = (self.ssm.clone(), self.session_id.clone());
        Box::pin(async move {
            let out = ssm
                .resume_session()
                .session_id(&id)
                .send()
                .await
                .map_err(|e| classify(&id, ApiError::from_sdk("ssm:ResumeSession", e)))?;
            match (out.stream_url(), out.token_value()) {
                (Some(url), Some(token)) if !token.is_empty() => Ok(Resumed {
                    stream_url: url.to_string(),
                    token: token.to_string(),
                }),
                // The official plugin's reading of an answer without a token.
                _ => Err(ResumeError::Refused(format!("session {id} timed out"))),
            }
        })
    }
}

fn classify(id: &str, err: ApiError) -> ResumeError {
    if err.transient {
        return ResumeError::Transient(err.to_string());
    }
    let code = err.code.as_deref().unwrap_or_default();
    ResumeError::Refused(match code {
        "DoesNotExistException" => format!(
            "session {id} no longer exists (terminated, timed out, or its task stopped)"
        ),
        "AccessDeniedException" => format!(
            "not allowed to resume session {id} (ssm:ResumeSession; see templates/user-policy.json): {}",
            err.message
        ),
        "ExpiredTokenException" | "ExpiredToken" | "RequestExpired" => format!(
            "the AWS credentials expired and could not be refreshed (sign in again): {}",
            err.message
        ),
        _ => err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str, transient: bool) -> ApiError {
        ApiError {
            operation: "ssm:ResumeSession",
            code: Some(code.into()),
            message: "m".into(),
            transient,
        }
    }

    #[test]
    fn a_gone_session_is_final_and_throttling_is_not() {
        let gone = classify("s-1", api("DoesNotExistException", false));
        assert!(matches!(&gone, ResumeError::Refused(why) if why.contains("no longer exists")));
        let denied = classify("s-1", api("AccessDeniedException", false));
        assert!(matches!(&denied, ResumeError::Refused(why) if why.contains("ssm:ResumeSession")));
        assert!(matches!(
            classify("s-1", api("ThrottlingException", true)),
            ResumeError::Transient(_)
        ));
    }
}
