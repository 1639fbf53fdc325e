//! `valmetal token`, and the sign-in links printed at start: tokens of the local issuer.

use std::net::SocketAddr;

use anyhow::Context;
use valmetal_engine::Config;
use valmetal_engine::auth::{Auth, AuthMode, LocalIssuer, LocalUser, Role};

use super::TokenArgs;

/// Prints a token of the local issuer of the configured data directory.
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(directory) = &args.data_dir {
        config.storage.data_dir.clone_from(directory);
    }
    if config.auth.mode != AuthMode::Local {
        anyhow::bail!(
            "`auth.mode` is not \"local\", so the engine signs no tokens; get one from the configured issuer"
        );
    }
    let role = Role::parse(&args.role).with_context(|| {
        format!(
            "--role {} is unknown; use admin, operator or farm_viewer",
            args.role
        )
    })?;
    if role != Role::Admin && args.farm.is_empty() {
        anyhow::bail!(
            "a token of role `{}` needs at least one --farm",
            role.as_str()
        );
    }
    let issuer = LocalIssuer::load_or_create(&config.storage.data_dir, config.auth.token_ttl)?;
    let user = LocalUser {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| role.as_str().to_owned()),
        role,
        farms: args.farm.clone(),
    };
    println!("{}", issuer.sign(&user)?);
    Ok(())
}

/// Prints how to open the dashboard: with a sign-in link per user in local mode.
///
/// # Errors
///
/// Returns the signing error of the local issuer.
pub fn print_sign_in(
    auth: &Auth,
    addr: SocketAddr,
    viewer_farm: Option<&str>,
) -> anyhow::Result<()> {
    let base = format!("http://{}/", super::demo::browsable(addr));
    let Some(issuer) = auth.local_issuer() else {
        let how = if auth.is_enabled() {
            "sign in with a token of the configured issuer"
        } else {
            "authentication is off"
        };
        println!("  Dashboard:   {base} ({how})");
        return Ok(());
    };
    let admin = LocalUser {
        name: "admin".to_owned(),
        role: Role::Admin,
        farms: Vec::new(),
    };
    println!(
        "  Dashboard:   {base}#token={} (admin, every farm)",
        issuer.sign(&admin)?
    );
    if let Some(farm) = viewer_farm {
        let viewer = LocalUser {
            name: format!("{farm}-viewer"),
            role: Role::FarmViewer,
            farms: vec![farm.to_owned()],
        };
        println!(
            "  Farm viewer: {base}#token={} (farm {farm} only, read-only)",
            issuer.sign(&viewer)?
        );
    }
    println!("  More tokens: valmetal token --role operator --farm FARM --data-dir DIR");
    Ok(())
}
