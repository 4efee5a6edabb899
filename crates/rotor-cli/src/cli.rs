//! Command-line arguments, as clap parses them (validated further by each command).
//!
//! The `///` comments here are clap's help text, where `[store]` or `[[render]]` name TOML
//! tables of rotor.toml, not Rust items: rustdoc must not read them as links.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "rotor",
    version,
    about = "Rotate secrets on schedule, without downtime, with proof."
)]
pub struct Cli {
    /// The inventory file.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "ROTOR_CONFIG",
        default_value = "rotor.toml"
    )]
    pub config: PathBuf,

    /// Output format for commands that print data.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// More logging on stderr (-v info, -vv debug); or set ROTOR_LOG.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Talk to a running `rotor serve` instead of the store (status, rotate, get); the token
    /// comes from ROTOR_TOKEN.
    #[arg(long, global = true, env = "ROTOR_SERVER")]
    pub server: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the store and a master key file for the config (never overwrites).
    Init,
    /// Validate the config; exit 2 with every error when it is invalid.
    Check,
    /// One row per secret: schedule, age, next due, state.
    Status(StatusArgs),
    /// What comes due, and when.
    Plan(PlanArgs),
    /// Rotate secrets: create → set → test → finish (→ retire after grace).
    Rotate(RotateArgs),
    /// Finish interrupted rotations.
    Resume(NameOpt),
    /// Roll back a rotation in progress; the current value is untouched.
    Abort(AbortArgs),
    /// Retire previous values whose grace has ended.
    Retire(RetireArgs),
    /// Prepare a target once (e.g. create PostgreSQL's alternating roles).
    Setup(Name),
    /// Check, changing nothing, that a rotation could run now: the target is reachable, the
    /// credentials rotor would use work and may do what the steps need; a plugin's `probe`.
    /// Exit 1 when any secret is blocked.
    Probe(ProbeArgs),
    /// Store a value you supply (stdin) as the new current version.
    Put(PutArgs),
    /// Show a version's metadata, or its value with --reveal.
    Get(GetArgs),
    /// Versions and rotations of a secret, newest first.
    History(Name),
    /// Run the daemon: scheduler, HTTP API, watch stream, JWKS, metrics, status page.
    Serve(ServeArgs),
    /// Write Prometheus alerting rules (SecretRotationOverdue per tier, SecretRotationFailed).
    Alerts(AlertsArgs),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Rotate every automatic secret as a rehearsal and write the post-rotation checklist.
    Drill(DrillArgs),
    /// Store maintenance: copy a whole store to another; sync an AWS store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Master key maintenance.
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCommand),
    /// Write every [[render]] target now (they are also written after each finish and retire).
    Render,
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the JWKS (public keys) of a JWT secret.
    Jwks(Name),
    /// Print the keyring document (private key material) of a JWT secret.
    Keyring(KeyringArgs),
    /// Sign or verify a token with a JWT secret's keyring.
    #[command(subcommand)]
    Jwt(JwtCommand),
    /// Print a shell completion script (e.g. `rotor completions bash > /etc/bash_completion.d/rotor`).
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `rotor man > /usr/local/share/man/man1/rotor.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct Name {
    /// The secret, as named in the config.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct NameOpt {
    /// The secret, as named in the config (default: every secret).
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit 3 when any secret is overdue (for cron and CI).
    #[arg(long)]
    pub fail_on_overdue: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// How many days ahead to look.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Secrets to rotate.
    pub names: Vec<String>,
    /// Every automatic secret that is due, overdue or never rotated.
    #[arg(long, conflicts_with_all = ["names", "all"])]
    pub due: bool,
    /// Every secret rotor can rotate (manual-kind secrets are skipped).
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// Why (recorded in the audit log); required with --emergency.
    #[arg(long)]
    pub reason: Option<String>,
    /// Print what would happen and probe the target (`rotor probe`), touching nothing;
    /// exit 1 when a probe finds the rotation blocked.
    #[arg(long)]
    pub dry_run: bool,
    /// Suspected compromise: NAMES may be secrets, kinds (jwt, postgres, redis, ...) or `all`;
    /// notifies first, rotates with grace 0 (admins first), evicts sessions, runs
    /// on_emergency hooks, and writes the post-rotation checklist report.
    #[arg(long, requires = "reason")]
    pub emergency: bool,
    /// With --emergency: do not end live sessions of the old credentials.
    #[arg(long, requires = "emergency")]
    pub no_evict: bool,
    /// Confirm rotating secrets whose policy requires it.
    #[arg(long)]
    pub confirm: bool,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Secrets to probe.
    #[arg(required_unless_present = "all")]
    pub names: Vec<String>,
    /// Every secret of the inventory.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct AbortArgs {
    /// The secret whose rotation to roll back.
    pub name: String,
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// Retire every previous value whose grace has ended.
    #[arg(long, required = true)]
    pub due: bool,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The secret to store a value for.
    pub name: String,
    /// Generate the value (random secrets only) instead of reading stdin.
    #[arg(long)]
    pub generate: bool,
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The secret to read.
    pub name: String,
    /// Which version: current, previous or pending.
    #[arg(long, value_parser = parse_stage, default_value = "current")]
    pub stage: rotor_core::Stage,
    /// Print the value itself (alone, on stdout).
    #[arg(long)]
    pub reveal: bool,
}

fn parse_stage(s: &str) -> Result<rotor_core::Stage, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain (names the first bad record) and the head against the anchor
    /// file next to the config: cut-off records, an emptied log and a rebuilt chain fail.
    Verify {
        /// Also check against a head known from elsewhere (`rotor_audit_head` in metrics, an
        /// earlier `audit verify`): SEQ:HASH.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
    },
    /// Verify the chain and write the anchor of its current head (after an upgrade, a
    /// master-key rotation, or records written by another host you trust).
    Anchor,
    /// The newest records.
    Tail {
        /// How many records, newest last.
        #[arg(short = 'n', long, default_value_t = 20)]
        n: usize,
    },
}

#[derive(Debug, Args)]
pub struct KeyringArgs {
    /// The JWT secret.
    pub name: String,
    /// Required: the document holds private keys.
    #[arg(long)]
    pub reveal: bool,
}

#[derive(Debug, Subcommand)]
pub enum JwtCommand {
    /// Sign claims (JSON) with the current key; prints the token.
    Sign {
        /// The JWT secret whose current key signs.
        name: String,
        /// The claims, a JSON object, e.g. '{"sub":"42"}'.
        #[arg(long)]
        claims: String,
        /// Token lifetime (sets `exp` unless the claims have one); default and most: the
        /// secret's `token_lifetime`, which its grace covers.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Verify a token read from stdin; prints its claims, exit 1 when rejected.
    Verify {
        /// The JWT secret whose keys may have signed it (current, previous, pending).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy everything (versions, stages, rotations, the audit log) into the store of another
    /// config, then read it back and compare. The target is created if needed and must be empty.
    Migrate {
        /// The config whose [store] receives the copy.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// AWS stores: make AWS match the ledger for every secret, and bring each secret's
    /// description, KMS key and rotor tags (owner, tier, kind, rotated-by) in line.
    Sync,
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Rewrap every value under a new master key (written to KEYFILE.new, then moved over
    /// KEYFILE). Safe to interrupt and run again: until it finishes, both keys open the store.
    Rotate,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Overrides [server] listen.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Serve the API only; rotate nothing by schedule.
    #[arg(long)]
    pub no_scheduler: bool,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Write the rules to this file instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token: prints it once, and the [[tokens]] lines (with its hash) to paste.
    New {
        /// The token's name (in the audit log and the config).
        name: String,
        /// `read:GLOB`, `rotate:GLOB`, `write:GLOB` or `admin` (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Why (recorded in the audit log and the report).
    #[arg(long, default_value = "quarterly rotation drill")]
    pub reason: String,
    /// Include secrets whose policy requires confirmation.
    #[arg(long)]
    pub confirm: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every command says what it does and every argument what it means, in `--help`.
    #[test]
    fn every_command_and_argument_has_help() {
        let mut missing = Vec::new();
        visit(&super::Cli::command(), "rotor", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    fn visit(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_name() != "help" {
                missing.push(sub_path.clone());
            }
            visit(sub, &sub_path, missing);
        }
    }

    /// docs/cli.md has a section per command (a heading with `rotor PATH` in backticks)
    /// naming each of its own flags: a command or flag added without docs fails here.
    #[test]
    fn every_command_and_flag_is_in_docs_cli_md() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut missing = Vec::new();
        let cli = super::Cli::command();
        for arg in cli.get_arguments() {
            if let Some(long) = arg.get_long().filter(|l| !matches!(*l, "help" | "version"))
                && !text.contains(&format!("`--{long}"))
            {
                missing.push(format!("global flag --{long}"));
            }
        }
        documented(&cli, "rotor", &text, &mut missing);
        assert!(missing.is_empty(), "missing from docs/cli.md: {missing:?}");
    }

    fn documented(cmd: &clap::Command, path: &str, text: &str, missing: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let sub_path = format!("{path} {}", sub.get_name());
            let heading = format!("`{sub_path}`");
            let section = text
                .split("\n#")
                .find(|s| s.lines().next().is_some_and(|h| h.contains(&heading)));
            match section {
                None => missing.push(format!("a heading with {heading}")),
                Some(section) => {
                    for arg in sub.get_arguments().filter(|a| !a.is_global_set()) {
                        if let Some(long) = arg.get_long().filter(|l| *l != "help")
                            && !section.contains(&format!("`--{long}"))
                        {
                            missing.push(format!("{sub_path} --{long}"));
                        }
                    }
                }
            }
            documented(sub, &sub_path, text, missing);
        }
    }

    #[test]
    fn the_command_tree_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
