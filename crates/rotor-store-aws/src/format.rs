//! How a rotor value is written as an AWS secret value.

use rotor_core::{Credential, SecretName, SecretValue, StoreError};

/// The shape of a secret's value in AWS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AwsValueFormat {
    /// The SecretString is the value itself (SecretBinary when the value is not UTF-8):
    /// random strings, JWT keys, Redis passwords, manual values.
    #[default]
    Plain,
    /// AWS's documented JSON for PostgreSQL database credentials, which AWS's own rotation
    /// functions, `aws secretsmanager get-secret-value` and the caching clients read as is:
    /// `{"engine":"postgres","host":…,"port":…,"dbname":…,"username":…,"password":…}`.
    /// rotor's value for a postgres secret is `{"username":…,"password":…}`; the rest comes
    /// from here (the CLI fills it from the secret's target in the config).
    PostgresJson {
        host: String,
        port: u16,
        dbname: String,
    },
}

/// A value as AWS holds it. Both arms keep the bytes in a zeroizing [`SecretValue`].
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    String(SecretValue),
    Binary(SecretValue),
}

impl Payload {
    pub(crate) fn bytes(&self) -> &SecretValue {
        match self {
            Payload::String(v) | Payload::Binary(v) => v,
        }
    }
}

fn bad_value(secret: &SecretName, version: &str, why: &str) -> StoreError {
    StoreError::Backend(format!(
        "secret {secret}, version {version}: the value {why}, which the PostgresJson AWS format needs; fix the secret's kind or its AWS format setting"
    ))
}

impl AwsValueFormat {
    /// The AWS form of `value`. Errors never contain the value.
    pub(crate) fn encode(
        &self,
        secret: &SecretName,
        version: &str,
        value: &SecretValue,
    ) -> Result<Payload, StoreError> {
        match self {
            AwsValueFormat::Plain => Ok(match value.expose_str() {
                Ok(_) => Payload::String(value.clone()),
                Err(_) => Payload::Binary(value.clone()),
            }),
            AwsValueFormat::PostgresJson { host, port, dbname } => {
                let cred = Credential::parse(value)
                    .map_err(|e| bad_value(secret, version, &e.to_string()))?;
                let mut fields = serde_json::Map::new();
                fields.insert("engine".into(), "postgres".into());
                fields.insert("host".into(), host.as_str().into());
                fields.insert("port".into(), (*port).into());
                fields.insert("dbname".into(), dbname.as_str().into());
                let doc = cred.to_value_with(&fields).map_err(|e| {
                    StoreError::Backend(format!(
                        "secret {secret}, version {version}: cannot encode the AWS JSON: the value {e}"
                    ))
                })?;
                Ok(Payload::String(doc))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_json_has_aws_keys() {
        let name = SecretName::new("db").expect("valid");
        let v = SecretValue::from_slice(br#"{"username":"app","password":"p\"w"}"#);
        let f = AwsValueFormat::PostgresJson {
            host: "db.internal".into(),
            port: 5432,
            dbname: "divan".into(),
        };
        let Payload::String(out) = f.encode(&name, "v", &v).expect("encodes") else {
            panic!("string expected");
        };
        let back: serde_json::Value = serde_json::from_slice(out.expose()).expect("json");
        assert_eq!(back["engine"], "postgres");
        assert_eq!(back["host"], "db.internal");
        assert_eq!(back["port"], 5432);
        assert_eq!(back["dbname"], "divan");
        assert_eq!(back["username"], "app");
        assert_eq!(back["password"], "p\"w");
        // The bytes it has always written (sorted keys, compact), so values already in
        // AWS compare equal in `verified`.
        assert_eq!(
            out.expose_str().expect("utf-8"),
            r#"{"dbname":"divan","engine":"postgres","host":"db.internal","password":"p\"w","port":5432,"username":"app"}"#
        );
    }

    #[test]
    fn bad_postgres_value_error_has_no_value() {
        let name = SecretName::new("db").expect("valid");
        let v = SecretValue::from_slice(b"hunter2-not-json");
        let f = AwsValueFormat::PostgresJson {
            host: "h".into(),
            port: 1,
            dbname: "d".into(),
        };
        let e = f.encode(&name, "v", &v).expect_err("refused").to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("secret db"), "{e}");
    }

    #[test]
    fn plain_binary_when_not_utf8() {
        let name = SecretName::new("k").expect("valid");
        let v = SecretValue::from_slice(&[0xff, 0x00, 0x80]);
        assert!(matches!(
            AwsValueFormat::Plain.encode(&name, "v", &v),
            Ok(Payload::Binary(_))
        ));
    }
}
