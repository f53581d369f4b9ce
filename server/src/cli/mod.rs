//! The `gantry` command line: argument parsing and the subcommands. This is the binary's edge,
//! where errors become `anyhow` reports and exit codes.

mod client;
mod follow;
mod serve;
mod subscription;
mod watch;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gantry",
    version,
    about = "Git stack operations (sync, restack, rebase, reparent, register) as durable background jobs, pushed live over WebSocket"
)]
pub struct Cli {
    /// Without a subcommand, `gantry` serves with the default settings.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Register and list repos.
    Repo {
        #[command(subcommand)]
        command: RepoCommand,
    },
    /// Enqueue an action on a repo and print the accepted job (with --follow: follow it to its
    /// end).
    Act(ActArgs),
    /// Print a topic's events (snapshot, resumed, diff, error) as JSON lines, resuming across
    /// reconnects.
    Watch(WatchArgs),
    /// Open the terminal client: repos, branch stacks, jobs and tasks, live.
    Tui(ClientArgs),
    /// Manage organisations (needs an admin token).
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage tokens (needs an admin token).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organisation.
    Create {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the organisations.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed on stdout, this once.
    Create {
        /// The organisation's name or id.
        #[arg(long)]
        org: String,
        /// read (GET and subscribe) or write (also actions, tasks, repos, cancel).
        #[arg(long, value_parser = ["read", "write"])]
        scope: String,
        /// A note on what the token is for.
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token by id: it is refused at once and its open WebSockets close (4100).
    Revoke {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Register a repo; its first sync (the clone) is queued at once.
    Add {
        name: String,
        remote_url: String,
        #[arg(long, default_value = "main")]
        trunk: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the repos the token can see.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args)]
pub struct ActArgs {
    /// The repo's id or name.
    pub repo: String,
    /// sync_repo, restack_repo, restack_subtree, rebase_branch, reparent_branch or
    /// register_existing_branch.
    pub kind: String,
    #[arg(long)]
    pub branch: Option<String>,
    #[arg(long)]
    pub parent: Option<String>,
    /// Makes retries of this exact command safe: the server answers with the job it created the
    /// first time.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Follow the job until it ends: progress and status changes on stderr, the final job on
    /// stdout; exit status 0 only if it completed.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct WatchArgs {
    /// repos, repo/ID/jobs, repo/ID/branches, repo/ID/tasks or job/ID.
    pub topic: String,
    /// Resume from this cursor (a frame's epoch and position) instead of starting with a
    /// snapshot.
    #[arg(long, value_name = "EPOCH:POSITION")]
    pub since: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone)]
pub struct ClientArgs {
    /// The server's URL.
    #[arg(long, env = "GANTRY_URL", default_value = "http://127.0.0.1:7420")]
    pub server: String,
    /// The bearer token.
    #[arg(long, env = "GANTRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        Some(command) => command,
        None => Command::Serve(serve::ServeArgs::parse_from(["gantry serve"])),
    };
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Repo { command } => match command {
            RepoCommand::Add {
                name,
                remote_url,
                trunk,
                client,
            } => client::repo_add(&client, &name, &remote_url, &trunk).await,
            RepoCommand::List { client } => client::repo_list(&client).await,
        },
        Command::Act(args) => client::act(&args).await,
        Command::Watch(args) => watch::run(&args).await,
        Command::Tui(client) => tui(client).await,
        Command::Org { command } => match command {
            OrgCommand::Create { name, client } => client::org_create(&client, &name).await,
            OrgCommand::List { client } => client::org_list(&client).await,
        },
        Command::Token { command } => match command {
            TokenCommand::Create {
                org,
                scope,
                label,
                client,
            } => client::token_create(&client, &org, &scope, label.as_deref()).await,
            TokenCommand::List { client } => client::token_list(&client).await,
            TokenCommand::Revoke { id, client } => client::token_revoke(&client, &id).await,
        },
    }
}

async fn tui(client: ClientArgs) -> anyhow::Result<()> {
    let Some(token) = client.token else {
        anyhow::bail!(
            "no token: pass --token or set GANTRY_TOKEN (the server prints one at first start)"
        );
    };
    gantry_tui::run(gantry_tui::TuiOptions::new(client.server, token)).await?;
    Ok(())
}
