//! HTTP(S) source (feature `http`): fetches a keyring document or JWKS with reqwest
//! over rustls.

use std::time::Duration;

use crate::{Keyring, MAX_SOURCE_BYTES, Source, SourceError};

/// Fetches a keyring document or a JWKS from a URL on every refresh.
#[derive(Debug, Clone)]
pub struct HttpSource {
    url: String,
    client: reqwest::Client,
}

impl HttpSource {
    /// A source for `url` with a 10 s overall timeout.
    pub fn new(url: impl Into<String>) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SourceError::Http(e.to_string()))?;
        Ok(Self::with_client(url, client))
    }

    /// A source using a caller-configured client (proxies, custom roots, timeouts).
    pub fn with_client(url: impl Into<String>, client: reqwest::Client) -> Self {
        Self {
            url: url.into(),
            client,
        }
    }
}

#[async_trait::async_trait]
impl Source for HttpSource {
    async fn fetch(&self) -> Result<Keyring, SourceError> {
        let mut resp = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| SourceError::Http(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(SourceError::Http(format!("status {}", resp.status())));
        }
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_SOURCE_BYTES as u64)
        {
            return Err(SourceError::TooLarge(MAX_SOURCE_BYTES));
        }
        // Read in chunks so a lying or absent Content-Length cannot exhaust memory.
        let mut body = zeroize::Zeroizing::new(Vec::new());
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| SourceError::Http(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_SOURCE_BYTES {
                return Err(SourceError::TooLarge(body.len() + chunk.len()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Keyring::from_slice(&body)?)
    }

    fn describe(&self) -> String {
        // Drop any query string or userinfo: they may carry credentials.
        match reqwest::Url::parse(&self.url) {
            Ok(mut u) => {
                u.set_query(None);
                let _ = u.set_password(None);
                let _ = u.set_username("");
                format!("url {u}")
            }
            Err(_) => "url <unparseable>".to_owned(),
        }
    }
}
