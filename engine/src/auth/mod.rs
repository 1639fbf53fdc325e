//! Authentication and per-farm access: verifying bearer tokens and the [`Principal`] they
//! grant.

pub mod principal;

pub use principal::{FarmScope, Principal, Role};
