//! A small client of the daemon's API, for the CLI's `--server URL` mode.
//!
//! Errors carry the API's stable `code` and its message; never a value.

use base64::Engine as _;
use rotor_core::{SecretValue, Stage};
use serde::Deserialize;

/// An error from the API or the connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered an error: HTTP status, stable code (`unauthorized`, `forbidden`,
    /// `not_found`, `busy`, ...), message.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the rotor server: {0}")]
    Connection(String),
    #[error("unexpected answer from the rotor server: {0}")]
    Protocol(String),
}

/// A value fetched from the API.
#[derive(Debug, Clone)]
pub struct FetchedValue {
    pub version: String,
    pub stage: Stage,
    pub value: SecretValue,
}

/// The client: base URL (`http://127.0.0.1:8700`) and a bearer token.
///
/// The token grants what its scopes allow until it is revoked, so it is zeroized on drop
/// and `Debug` leaves it out (the CLI's errors and traces may print the client).
#[derive(Clone)]
pub struct Client {
    base: String,
    token: zeroize::Zeroizing<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &format_args!("<redacted>"))
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Deserialize)]
struct ErrorInner {
    code: String,
    message: String,
}

#[derive(Deserialize)]
struct ValueBody {
    version: String,
    stage: Stage,
    value: String,
    #[serde(default)]
    encoding: Option<String>,
}

impl Drop for ValueBody {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

impl Client {
    pub fn new(base: &str, token: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .user_agent(concat!("rotor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: zeroize::Zeroizing::new(token.to_owned()),
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .bearer_auth(self.token.as_str())
            .send()
            .await
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        match resp.json::<ErrorBody>().await {
            Ok(b) => Err(ClientError::Api {
                status,
                code: b.error.code,
                message: b.error.message,
            }),
            Err(_) => Err(ClientError::Api {
                status,
                code: "http".into(),
                message: format!("HTTP {status}"),
            }),
        }
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<serde_json::Value, ClientError> {
        self.call(req)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `GET /v1/secrets`: one object per secret (the fields of `rotor status --format json`).
    pub async fn status(&self) -> Result<Vec<serde_json::Value>, ClientError> {
        let v = self.json(self.http.get(self.url("/v1/secrets"))).await?;
        match v {
            serde_json::Value::Array(rows) => Ok(rows),
            _ => Err(ClientError::Protocol("expected a list of secrets".into())),
        }
    }

    /// `GET /v1/secrets/{name}`: metadata and versions.
    pub async fn secret(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.json(self.http.get(self.url(&format!("/v1/secrets/{name}"))))
            .await
    }

    /// `POST /v1/secrets/{name}/rotate`: the engine's outcome as JSON.
    pub async fn rotate(
        &self,
        name: &str,
        emergency: bool,
        reason: Option<&str>,
        confirm: bool,
    ) -> Result<serde_json::Value, ClientError> {
        let body =
            serde_json::json!({ "emergency": emergency, "reason": reason, "confirm": confirm });
        self.json(
            self.http
                .post(self.url(&format!("/v1/secrets/{name}/rotate")))
                .json(&body),
        )
        .await
    }

    /// `GET /v1/secrets/{name}/value?stage=...`.
    pub async fn get_value(&self, name: &str, stage: Stage) -> Result<FetchedValue, ClientError> {
        let resp = self
            .call(self.http.get(self.url(&format!(
                "/v1/secrets/{name}/value?stage={}",
                stage.as_str()
            ))))
            .await?;
        let bytes = zeroize::Zeroizing::new(
            resp.bytes()
                .await
                .map_err(|e| ClientError::Connection(e.to_string()))?
                .to_vec(),
        );
        let body: ValueBody = serde_json::from_slice(&bytes)
            .map_err(|_| ClientError::Protocol("the value response does not parse".into()))?;
        let value = match body.encoding.as_deref() {
            Some("base64") => SecretValue::new(
                base64::engine::general_purpose::STANDARD
                    .decode(body.value.as_bytes())
                    .map_err(|_| ClientError::Protocol("the value is not valid base64".into()))?,
            ),
            _ => SecretValue::from_slice(body.value.as_bytes()),
        };
        Ok(FetchedValue {
            version: body.version.clone(),
            stage: body.stage,
            value,
        })
    }

    /// `PUT /v1/secrets/{name}/value`: returns the new version id.
    pub async fn put_value(
        &self,
        name: &str,
        value: &SecretValue,
        reason: Option<&str>,
    ) -> Result<String, ClientError> {
        let (text, encoding) = match value.expose_str() {
            Ok(s) => (zeroize::Zeroizing::new(s.to_owned()), "utf8"),
            Err(_) => (
                zeroize::Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.encode(value.expose()),
                ),
                "base64",
            ),
        };
        let body = zeroize::Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({
                "value": text.as_str(),
                "encoding": encoding,
                "reason": reason,
            }))
            .map_err(|e| ClientError::Protocol(e.to_string()))?,
        );
        let v = self
            .json(
                self.http
                    .put(self.url(&format!("/v1/secrets/{name}/value")))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_vec()),
            )
            .await?;
        v.get("version")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Protocol("no version in the answer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_the_token_out() {
        let c = Client::new("http://127.0.0.1:8700/", "rtk_secret-token-value").expect("client");
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(
            shown.contains("127.0.0.1:8700") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
