//! Built-in rotators whose "target" is rotor itself: [`RandomRotator`] (session secrets,
//! peppers, data keys) and [`JwtRotator`] (signing keys published through a keyring/JWKS).
//!
//! Neither touches a store: the engine stores what `create` returns. For JWT keys "set" is
//! the publication that happens by storing the key as `pending` (the keyring and JWKS are
//! built from the stored stages, see [`jwt::keyring_document`]), and "retire" is dropping the
//! `previous` label, which the engine does.

pub mod jwt;
pub mod random;
pub mod value_check;

pub use jwt::JwtRotator;
pub use random::RandomRotator;
pub use value_check::ValueError;
